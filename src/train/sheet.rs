//! Sample sheets: one row per sample, columns label | exemplar | warped | output | ground truth
//! (any column may be left out), with titles, written as PNG for a person to look at.

use super::glyphs::draw_text;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::video::{write_png_atomic, Frame};
use std::path::Path;

/// A column of a sheet: a title and a [B, C, S, S] tensor. `Label` shows channels 0..3 (the stick
/// figure, values in [0, 1]); `Image` shows an RGB image in [-1, 1].
pub enum Column<'a> {
    Label(&'a str, &'a Tensor),
    Image(&'a str, &'a Tensor),
}

impl Column<'_> {
    fn parts(&self) -> (&str, &Tensor, bool) {
        match self {
            Column::Label(t, x) => (t, x, true),
            Column::Image(t, x) => (t, x, false),
        }
    }
}

const TITLE_H: u32 = 14;
const GAP: u32 = 2;

/// Lays the columns side by side and writes `path` (PNG, atomically).
pub fn write_sheet(path: &Path, columns: &[Column<'_>]) -> Result<()> {
    let (b, s) = check(columns)?;
    let w = columns.len() as u32 * (s + GAP) + GAP;
    let h = TITLE_H + b * (s + GAP) + GAP;
    let mut buf = vec![40u8; (w * h * 3) as usize];
    for (k, col) in columns.iter().enumerate() {
        let (title, t, is_label) = col.parts();
        let x0 = GAP + k as u32 * (s + GAP);
        draw_text(&mut buf, w, h, (x0 as i64, 4), title, 2, [230; 3]);
        let data = t.to_vec()?; // a host copy: the tensors may live on the GPU
        let plane = (s * s) as usize;
        let per = t.dims()[1] * plane;
        for n in 0..b as usize {
            let y0 = TITLE_H + GAP + n as u32 * (s + GAP);
            for p in 0..plane {
                let rgb = [0, 1, 2].map(|c| {
                    let v = data[n * per + c * plane + p];
                    let unit = if is_label { v } else { (v + 1.0) / 2.0 };
                    (unit.clamp(0.0, 1.0) * 255.0).round() as u8
                });
                let (x, y) = (x0 + (p as u32 % s), y0 + (p as u32 / s));
                let i = 3 * (y as usize * w as usize + x as usize);
                buf[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }
    write_png_atomic(path, &Frame::new(w, h, buf)?)
}

/// (batch, side) shared by all columns; each must be [B, >=3, S, S].
fn check(columns: &[Column<'_>]) -> Result<(u32, u32)> {
    let first = columns
        .first()
        .ok_or_else(|| Error::invalid("sample sheet", "no columns"))?
        .parts()
        .1
        .dims()
        .to_vec();
    for col in columns {
        let d = col.parts().1.dims();
        let ok = d.len() == 4 && d[1] >= 3 && d[2] == d[3] && d[0] == first[0] && d[2] == first[2];
        if !ok {
            return Err(Error::shape(
                "sample sheet",
                format!(
                    "column `{}` is {d:?}; expected [{}, >=3, S, S] like the first",
                    col.parts().0,
                    first[0]
                ),
            ));
        }
    }
    Ok((first[0] as u32, first[2] as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::test_frames::TempDir;

    #[test]
    fn writes_one_row_per_sample() {
        let tmp = TempDir::new("sheet");
        let label = Tensor::zeros(vec![2, 21, 8, 8]);
        let img = Tensor::full(1.0, [2, 3, 8, 8]);
        let path = tmp.path().join("s.png");
        write_sheet(
            &path,
            &[Column::Label("label", &label), Column::Image("out", &img)],
        )
        .unwrap();
        let png = image::open(&path).unwrap().to_rgb8();
        assert_eq!(png.dimensions(), (2 * 10 + 2, TITLE_H + 2 * 10 + 2));
        // A white pixel of the image column, a black one of the label column.
        assert_eq!(png.get_pixel(12 + 3, TITLE_H + 2 + 3).0, [255, 255, 255]);
        assert_eq!(png.get_pixel(2 + 3, TITLE_H + 2 + 3).0, [0, 0, 0]);
        let bad = Tensor::zeros(vec![3, 3, 8, 8]);
        assert!(write_sheet(&path, &[Column::Image("a", &img), Column::Image("b", &bad)]).is_err());
    }
}
