//! `Frame`: one RGB8 image (row-major, 3 bytes per pixel, no row padding), its crops, and its
//! conversion to and from the networks' CHW tensors in [-1, 1].

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::pose::transform::centre_square_crop;
use crate::pose::CropBox;
use crate::tensor::Tensor;

#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}×{} RGB8)", self.width, self.height)
    }
}

/// Bytes of a `width`×`height` RGB8 image, or an error for empty or overflowing sizes.
pub(crate) fn rgb_len(op: &'static str, width: u32, height: u32) -> Result<usize> {
    if width == 0 || height == 0 {
        return Err(Error::invalid(
            op,
            format!("empty frame size {width}×{height}"),
        ));
    }
    (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| Error::invalid(op, format!("frame size {width}×{height} is too large")))
}

impl Frame {
    /// A frame from packed RGB8 bytes (`width·height·3` of them, rows top to bottom).
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Frame> {
        let len = rgb_len("Frame::new", width, height)?;
        if data.len() != len {
            return Err(Error::shape(
                "Frame::new",
                format!(
                    "{} bytes for a {width}×{height} RGB frame (needs {len})",
                    data.len()
                ),
            ));
        }
        Ok(Frame {
            width,
            height,
            data,
        })
    }

    /// A frame of one colour.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Result<Frame> {
        let len = rgb_len("Frame::filled", width, height)?;
        let data = rgb.iter().copied().cycle().take(len).collect();
        Ok(Frame {
            width,
            height,
            data,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    /// (width, height)
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
    /// One row's bytes (`width·3`); `y` must be inside the frame.
    pub(crate) fn row(&self, y: u32) -> &[u8] {
        let stride = self.width as usize * 3;
        &self.data[y as usize * stride..(y as usize + 1) * stride]
    }

    /// The pixel at (x, y), or `None` outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }

    /// Sets the pixel at (x, y); outside the frame it does nothing (drawing code clips this way).
    pub fn set_pixel(&mut self, x: u32, y: u32, rgb: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y as usize * self.width as usize + x as usize) * 3;
            self.data[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// The part of the frame inside `b`, which must be non-empty and lie inside the frame (see
    /// [`Frame::crop_padded`] for boxes that extend past it).
    pub fn crop(&self, b: &CropBox) -> Result<Frame> {
        b.check_inside(self.width, self.height)?;
        // Inside the frame, so the corner is >= 0.
        let (x0, w) = (b.x as usize * 3, b.w as usize * 3);
        let mut data = Vec::with_capacity(w * b.h as usize);
        for y in b.y as u32..b.y as u32 + b.h {
            data.extend_from_slice(&self.row(y)[x0..x0 + w]);
        }
        Ok(Frame {
            width: b.w,
            height: b.h,
            data,
        })
    }

    /// The part of the frame inside `b`, where `b` may extend past the frame: pixels outside are
    /// `fill`. The box must be non-empty, share at least one pixel with the frame, and be at
    /// most `MAX_BOX_FACTOR` × the frame's longer side ([`CropBox::check_overlaps`]). A box
    /// inside the frame gives exactly [`Frame::crop`].
    pub fn crop_padded(&self, b: &CropBox, fill: [u8; 3]) -> Result<Frame> {
        if b.is_inside(self.width, self.height) {
            return self.crop(b);
        }
        b.check_overlaps(self.width, self.height)?;
        let len = rgb_len("Frame::crop_padded", b.w, b.h)?;
        let mut data: Vec<u8> = fill.iter().copied().cycle().take(len).collect();
        // The frame's columns and rows inside the box (non-empty: the box overlaps the frame),
        // as frame coordinates; i64 so corners far outside cannot overflow.
        let (bx, by) = (b.x as i64, b.y as i64);
        let (x0, x1) = (bx.max(0), (bx + b.w as i64).min(self.width as i64));
        let (y0, y1) = (by.max(0), (by + b.h as i64).min(self.height as i64));
        let out_stride = b.w as usize * 3;
        let dst_x = (x0 - bx) as usize * 3;
        let span = (x1 - x0) as usize * 3;
        for y in y0..y1 {
            let src = &self.row(y as u32)[x0 as usize * 3..x0 as usize * 3 + span];
            let at = (y - by) as usize * out_stride + dst_x;
            data[at..at + span].copy_from_slice(src);
        }
        Ok(Frame {
            width: b.w,
            height: b.h,
            data,
        })
    }

    /// The largest centred square (the paper's crop of a landscape frame).
    pub fn centre_square(&self) -> Result<Frame> {
        self.crop(&centre_square_crop(self.width, self.height)?)
    }

    /// The frame as a `[3, H, W]` tensor with values `byte / 127.5 - 1` in [-1, 1].
    pub fn to_tensor(&self) -> Result<Tensor> {
        let plane = self.width as usize * self.height as usize;
        let mut out = vec![0f32; 3 * plane];
        out.par_chunks_mut(plane).enumerate().for_each(|(c, dst)| {
            for (d, px) in dst.iter_mut().zip(self.data.chunks_exact(3)) {
                *d = px[c] as f32 / 127.5 - 1.0;
            }
        });
        Tensor::from_vec(out, vec![3, self.height as usize, self.width as usize])
    }

    /// A frame from a `[3, H, W]` (or `[1, 3, H, W]`) tensor in [-1, 1]: values are clamped to
    /// that range and rounded to the nearest byte (NaN becomes 0, i.e. black-ish -1).
    pub fn from_tensor(t: &Tensor) -> Result<Frame> {
        let (h, w) = match t.dims() {
            [3, h, w] | [1, 3, h, w] => (*h, *w),
            d => {
                return Err(Error::shape(
                    "Frame::from_tensor",
                    format!("expected [3, H, W] or [1, 3, H, W], got {d:?}"),
                ))
            }
        };
        let (width, height) = match (u32::try_from(w), u32::try_from(h)) {
            (Ok(w), Ok(h)) => (w, h),
            _ => {
                return Err(Error::invalid(
                    "Frame::from_tensor",
                    format!("size {w}×{h} too large"),
                ))
            }
        };
        let len = rgb_len("Frame::from_tensor", width, height)?;
        let values = t.to_vec()?;
        let plane = w * h;
        let mut data = vec![0u8; len];
        data.par_chunks_mut(w * 3).enumerate().for_each(|(y, row)| {
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                for (c, p) in px.iter_mut().enumerate() {
                    let v = values[c * plane + y * w + x];
                    // `as u8` saturates and maps NaN to 0.
                    *p = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
                }
            }
        });
        Ok(Frame {
            width,
            height,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> Frame {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[(x * 7 + y) as u8, (y * 5) as u8, (x * y) as u8]);
            }
        }
        Frame::new(w, h, data).unwrap()
    }

    #[test]
    fn new_checks_size() {
        assert!(Frame::new(2, 2, vec![0; 12]).is_ok());
        assert!(matches!(
            Frame::new(2, 2, vec![0; 11]),
            Err(Error::Shape { .. })
        ));
        assert!(Frame::new(0, 2, vec![]).is_err());
        assert!(Frame::filled(3, 0, [1, 2, 3]).is_err());
        assert!(Frame::new(u32::MAX, u32::MAX, vec![]).is_err());
        let f = Frame::filled(3, 1, [1, 2, 3]).unwrap();
        assert_eq!(f.data(), &[1, 2, 3, 1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn crop_matches_reference_and_checks_bounds() {
        let f = ramp(7, 5);
        let b = CropBox {
            x: 2,
            y: 1,
            w: 3,
            h: 4,
        };
        let c = f.crop(&b).unwrap();
        assert_eq!(c.size(), (3, 4));
        for y in 0..4 {
            for x in 0..3 {
                assert_eq!(c.pixel(x, y), f.pixel(x + 2, y + 1));
            }
        }
        assert_eq!(
            f.crop(&CropBox {
                x: 0,
                y: 0,
                w: 7,
                h: 5
            })
            .unwrap(),
            f
        );
        assert_eq!(
            f.crop(&CropBox {
                x: 6,
                y: 4,
                w: 1,
                h: 1
            })
            .unwrap()
            .data(),
            &f.pixel(6, 4).unwrap()
        );
        for bad in [
            CropBox {
                x: 5,
                y: 0,
                w: 3,
                h: 1,
            },
            CropBox {
                x: 0,
                y: 2,
                w: 1,
                h: 4,
            },
            CropBox {
                x: 0,
                y: 0,
                w: 0,
                h: 1,
            },
            CropBox {
                x: i32::MAX,
                y: 0,
                w: 2,
                h: 1,
            },
        ] {
            assert!(f.crop(&bad).is_err(), "{bad:?}");
        }
    }

    /// Naive padded crop: every output pixel looked up in the frame, or `fill` outside it.
    fn padded_reference(f: &Frame, b: &CropBox, fill: [u8; 3]) -> Frame {
        let mut data = Vec::new();
        for j in 0..b.h as i64 {
            for i in 0..b.w as i64 {
                let (x, y) = (b.x as i64 + i, b.y as i64 + j);
                let inside =
                    (0..f.width() as i64).contains(&x) && (0..f.height() as i64).contains(&y);
                let px = if inside {
                    f.pixel(x as u32, y as u32).unwrap()
                } else {
                    fill
                };
                data.extend_from_slice(&px);
            }
        }
        Frame::new(b.w, b.h, data).unwrap()
    }

    #[test]
    fn padded_crop_matches_reference_on_a_portrait_frame() {
        let f = ramp(7, 11);
        let fill = [128, 128, 128];
        let bx = |x, y, w, h| CropBox { x, y, w, h };
        // A square taller than the frame is wide (the person crop of a portrait video), boxes
        // past each edge, past all four, and touching the frame with a single corner pixel.
        for b in [
            bx(-3, -1, 13, 13),
            bx(-2, 3, 4, 5),
            bx(5, -4, 6, 6),
            bx(1, 9, 3, 5),
            bx(-6, -6, 20, 22),
            bx(-4, -4, 5, 5),
            bx(6, 10, 3, 2),
        ] {
            let c = f.crop_padded(&b, fill).unwrap();
            assert_eq!(c, padded_reference(&f, &b, fill), "{b:?}");
        }
        // Pixel by pixel for the portrait square: padding is the fill, the rest is the source.
        let b = bx(-3, -1, 13, 13);
        let c = f.crop_padded(&b, fill).unwrap();
        assert_eq!(c.size(), (13, 13));
        assert_eq!(c.pixel(0, 0), Some(fill));
        assert_eq!(c.pixel(2, 5), Some(fill));
        assert_eq!(c.pixel(10, 5), Some(fill));
        assert_eq!(c.pixel(5, 0), Some(fill));
        assert_eq!(c.pixel(5, 12), Some(fill));
        assert_eq!(c.pixel(3, 1), f.pixel(0, 0));
        assert_eq!(c.pixel(9, 11), f.pixel(6, 10));
        let fills = (0..13u32)
            .flat_map(|y| (0..13u32).map(move |x| (x, y)))
            .filter(|&(x, y)| c.pixel(x, y) == Some(fill))
            .count();
        assert!(fills >= 13 * 13 - 7 * 11);
        // Another fill colour goes where it is asked.
        let red = f.crop_padded(&b, [255, 0, 0]).unwrap();
        assert_eq!(red.pixel(0, 0), Some([255, 0, 0]));
    }

    #[test]
    fn padded_crop_inside_the_frame_is_the_plain_crop() {
        let f = ramp(9, 6);
        let bx = |x, y, w, h| CropBox { x, y, w, h };
        for b in [
            bx(0, 0, 9, 6),
            bx(2, 1, 3, 4),
            bx(8, 5, 1, 1),
            centre_square_crop(9, 6).unwrap(),
        ] {
            assert_eq!(f.crop_padded(&b, [1, 2, 3]).unwrap(), f.crop(&b).unwrap());
        }
        for bad in [
            bx(9, 0, 2, 2),
            bx(0, -2, 3, 2),
            bx(0, 0, 0, 3),
            bx(-30, 0, 40, 2),
            bx(i32::MIN, 0, u32::MAX, 1),
        ] {
            let e = f.crop_padded(&bad, [0; 3]).unwrap_err();
            assert!(matches!(e, Error::Invalid { .. }), "{bad:?}: {e}");
        }
    }

    #[test]
    fn centre_square_of_landscape_portrait_and_square() {
        let f = ramp(9, 4);
        let s = f.centre_square().unwrap();
        assert_eq!(
            s,
            f.crop(&CropBox {
                x: 2,
                y: 0,
                w: 4,
                h: 4
            })
            .unwrap()
        );
        let p = ramp(3, 8);
        assert_eq!(
            p.centre_square().unwrap(),
            p.crop(&CropBox {
                x: 0,
                y: 2,
                w: 3,
                h: 3
            })
            .unwrap()
        );
        let q = ramp(1, 1);
        assert_eq!(q.centre_square().unwrap(), q);
    }

    #[test]
    fn tensor_round_trip_and_layout() {
        let f = ramp(5, 3);
        let t = f.to_tensor().unwrap();
        assert_eq!(t.dims(), &[3, 3, 5]);
        let v = t.cpu_data().unwrap();
        for y in 0..3u32 {
            for x in 0..5u32 {
                let px = f.pixel(x, y).unwrap();
                for c in 0..3 {
                    let want = px[c] as f32 / 127.5 - 1.0;
                    assert!((v[c * 15 + y as usize * 5 + x as usize] - want).abs() < 1e-6);
                }
            }
        }
        assert_eq!(Frame::from_tensor(&t).unwrap(), f);
        let batched = t.reshape(vec![1, 3, 3, 5]).unwrap();
        assert_eq!(Frame::from_tensor(&batched).unwrap(), f);
        let ends =
            Tensor::from_vec(vec![-1.0, 1.0, 0.0, -7.0, 7.0, f32::NAN], vec![3, 1, 2]).unwrap();
        assert_eq!(
            Frame::from_tensor(&ends).unwrap().data(),
            &[0, 128, 255, 255, 0, 0]
        );
    }

    #[test]
    fn from_tensor_rejects_bad_shapes() {
        for dims in [vec![4, 2, 2], vec![2, 3, 2, 2], vec![3, 4], vec![3, 0, 2]] {
            let n = dims.iter().product();
            let t = Tensor::from_vec(vec![0.0; n], dims.clone()).unwrap();
            assert!(Frame::from_tensor(&t).is_err(), "{dims:?}");
        }
    }
}
