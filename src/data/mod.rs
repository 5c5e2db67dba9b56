//! Datasets over one target video: its frames cropped and resized to the model size with their
//! poses in model coordinates (`clip`), and the samples training draws from them (`dataset`):
//! a held-out split, seeded epoch shuffles, exemplar frames, temporal windows and face crops.

pub mod clip;
pub mod crop_record;
pub mod dataset;
pub mod patch;

pub use clip::{load_clip, load_frames, Clip, ClipOptions, CropMode};
pub use crop_record::{CropRecord, CROP_FILE};
pub use dataset::{sized_face_box, Dataset, TemporalBatch};
pub use patch::{crop_tensor, paste_tensor};
