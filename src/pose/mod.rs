//! Poses: OpenPose COCO-18 keypoints, their JSON files, geometry (crop, resize, smoothing), global
//! normalisation between two videos, and the label maps the networks see.

pub mod estimate;
pub mod face;
pub mod keypoints;
pub mod normalize;
pub mod openpose_json;
pub mod paf;
pub mod render;
pub mod transform;

pub use face::{face_box, FaceBox};
pub use keypoints::{Keypoint, Pose, NUM_KEYPOINTS};
pub use normalize::{Normalization, NormalizationKind};
pub use openpose_json::{
    read_pose_file, read_pose_folder, write_pose_file, EmptyFrame, PersonChoice, ReadOptions,
};
pub use render::{render_label, LabelKind, LabelMap};
pub use transform::CropBox;
