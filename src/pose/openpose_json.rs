//! OpenPose `--write_json` files: one file per frame,
//! `{"version": …, "people": [{"pose_keypoints_2d": [x0, y0, c0, …]}]}` with 54 floats (COCO-18) or 75 floats (BODY_25, mapped to COCO-18).
//!
//! Every error is `Error::File` naming the file that caused it.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::keypoints::{Keypoint, Pose, NUM_KEYPOINTS};
use crate::error::{Error, Result};

/// BODY_25 index of each COCO-18 keypoint: BODY_25 inserts MidHip at 8 and appends 6 foot points,
/// so COCO-18 points 0-7 keep their index and points 8-17 move up by one.
pub const BODY25_TO_COCO18: [usize; NUM_KEYPOINTS] = [
    0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
];

const COCO18_FLOATS: usize = NUM_KEYPOINTS * 3;
const BODY25_FLOATS: usize = 25 * 3;

/// Which person of a multi-person frame becomes the frame's pose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PersonChoice {
    /// `people[0]` in OpenPose's own order; entries with no detected keypoint are skipped.
    #[default]
    First,
    /// The person whose present keypoints span the largest bounding-box area (first on ties).
    Largest,
}

/// What a frame with no person (or only all-missing people) gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmptyFrame {
    /// An error naming the file and saying "no person".
    #[default]
    Error,
    /// A pose with every keypoint missing.
    AllMissing,
}

/// Options for reading OpenPose JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOptions {
    pub person: PersonChoice,
    pub empty: EmptyFrame,
}

#[derive(Deserialize)]
struct FrameJson {
    people: Vec<PersonJson>,
}

#[derive(Deserialize)]
struct PersonJson {
    pose_keypoints_2d: Vec<f32>,
}

#[derive(Serialize)]
struct FrameOut<'a> {
    version: f32,
    people: [PersonOut<'a>; 1],
}

#[derive(Serialize)]
struct PersonOut<'a> {
    pose_keypoints_2d: &'a [f32],
}

/// Parses the text of one OpenPose JSON file; `path` only names the file in errors.
pub fn parse_pose_json(text: &str, path: &Path, opts: &ReadOptions) -> Result<Pose> {
    let frame: FrameJson = serde_json::from_str(text)
        .map_err(|e| Error::file(path, format!("malformed OpenPose JSON: {e}")))?;
    let mut poses = Vec::with_capacity(frame.people.len());
    for (i, person) in frame.people.iter().enumerate() {
        poses.push(person_to_pose(&person.pose_keypoints_2d).map_err(|detail| {
            Error::file(path, format!("people[{i}].pose_keypoints_2d: {detail}"))
        })?);
    }
    let chosen = match opts.person {
        PersonChoice::First => poses.into_iter().find(|p| p.num_present() > 0),
        PersonChoice::Largest => largest(poses),
    };
    match (chosen, opts.empty) {
        (Some(p), _) => Ok(p),
        (None, EmptyFrame::AllMissing) => Ok(Pose::missing()),
        (None, EmptyFrame::Error) => Err(Error::file(
            path,
            format!(
                "no person in this frame ({} entries in \"people\", none with a detected keypoint)",
                frame.people.len()
            ),
        )),
    }
}

/// Converts one person's flat keypoint list (COCO-18 or BODY_25) to a COCO-18 pose.
fn person_to_pose(values: &[f32]) -> std::result::Result<Pose, String> {
    let mut pose = Pose::missing();
    match values.len() {
        COCO18_FLOATS => {
            for (k, v) in pose.keypoints.iter_mut().zip(values.chunks_exact(3)) {
                *k = Keypoint::new(v[0], v[1], v[2]);
            }
        }
        BODY25_FLOATS => {
            for (k, &src) in pose.keypoints.iter_mut().zip(BODY25_TO_COCO18.iter()) {
                let v = &values[3 * src..3 * src + 3];
                *k = Keypoint::new(v[0], v[1], v[2]);
            }
        }
        n => {
            return Err(format!(
                "expected {COCO18_FLOATS} floats (COCO-18) or {BODY25_FLOATS} (BODY_25), got {n}"
            ))
        }
    }
    Ok(pose)
}

/// The pose with the largest bounding-box area of present keypoints; people with no present
/// point are skipped, and the first wins a tie.
fn largest(poses: Vec<Pose>) -> Option<Pose> {
    let mut best: Option<(f32, Pose)> = None;
    for p in poses {
        let Some(b) = p.bounds() else { continue };
        let area = b.area();
        if best.as_ref().is_none_or(|(a, _)| area > *a) {
            best = Some((area, p));
        }
    }
    best.map(|(_, p)| p)
}

/// Reads one OpenPose JSON file.
pub fn read_pose_file(path: &Path, opts: &ReadOptions) -> Result<Pose> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read OpenPose JSON: {e}")))?;
    parse_pose_json(&text, path, opts)
}

/// The COCO-18 JSON text of one pose, in OpenPose's format (version 1.3, one person).
pub fn pose_to_json(pose: &Pose) -> String {
    let flat = pose.to_flat();
    let frame = FrameOut {
        version: 1.3,
        people: [PersonOut {
            pose_keypoints_2d: &flat,
        }],
    };
    // Serialising plain floats and slices into a String cannot fail.
    serde_json::to_string(&frame).unwrap_or_default()
}

/// Writes one pose as a COCO-18 OpenPose JSON file.
pub fn write_pose_file(path: &Path, pose: &Pose) -> Result<()> {
    std::fs::write(path, pose_to_json(pose))
        .map_err(|e| Error::file(path, format!("cannot write OpenPose JSON: {e}")))
}

/// The `.json` files of a folder in natural order of their names (`f_2` before `f_10`).
pub fn list_pose_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::file(dir, format!("cannot read pose folder: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::file(dir, format!("cannot read pose folder: {e}")))?;
        let path = entry.path();
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::file(dir, "pose folder holds no .json files"));
    }
    files.sort_by(|a, b| natural_cmp(&file_name(a), &file_name(b)));
    Ok(files)
}

/// Reads every `.json` file of a folder, one pose per frame, in natural order of the names.
pub fn read_pose_folder(dir: &Path, opts: &ReadOptions) -> Result<Vec<Pose>> {
    list_pose_files(dir)?
        .iter()
        .map(|p| read_pose_file(p, opts))
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Compares names with runs of ASCII digits compared as numbers (leading zeros ignored, then the
/// shorter run first), everything else character by character.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let (ei, ej) = (digit_run_end(a, i), digit_run_end(b, j));
            let ord = cmp_digit_runs(&a[i..ei], &b[j..ej]);
            if ord != Ordering::Equal {
                return ord;
            }
            (i, j) = (ei, ej);
        } else {
            match a[i].cmp(&b[j]) {
                Ordering::Equal => (i, j) = (i + 1, j + 1),
                ord => return ord,
            }
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn digit_run_end(s: &[u8], start: usize) -> usize {
    start + s[start..].iter().take_while(|c| c.is_ascii_digit()).count()
}

fn cmp_digit_runs(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
    let (ta, tb) = (&a[strip(a)..], &b[strip(b)..]);
    // Equal-length digit strings compare lexicographically as numbers do.
    ta.len()
        .cmp(&tb.len())
        .then_with(|| ta.cmp(tb))
        .then_with(|| a.len().cmp(&b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coco18_values(offset: f32) -> Vec<f32> {
        (0..18)
            .flat_map(|i| [offset + i as f32, 2.0 * i as f32, 0.5])
            .collect()
    }

    fn json(people: &[Vec<f32>]) -> String {
        let list: Vec<String> = people
            .iter()
            .map(|v| format!("{{\"person_id\":[-1],\"pose_keypoints_2d\":{v:?}}}"))
            .collect();
        format!("{{\"version\":1.3,\"people\":[{}]}}", list.join(","))
    }

    fn parse(text: &str, opts: ReadOptions) -> Result<Pose> {
        parse_pose_json(text, Path::new("frame_000.json"), &opts)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("engine_pose_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn parses_coco18_with_missing_points() {
        let mut v = coco18_values(100.0);
        v[3 * 9..3 * 9 + 3].copy_from_slice(&[0.0, 0.0, 0.0]);
        let p = parse(&json(&[v]), ReadOptions::default()).unwrap();
        assert_eq!(p.keypoints[0], Keypoint::new(100.0, 0.0, 0.5));
        assert_eq!(p.keypoints[17], Keypoint::new(117.0, 34.0, 0.5));
        assert!(!p.is_present(9));
        assert_eq!(p.num_present(), 17);
    }

    #[test]
    fn maps_body25_to_coco18() {
        // BODY_25 point j at (j, 10 j); MidHip (8) and the feet (19-24) must be dropped.
        let v: Vec<f32> = (0..25)
            .flat_map(|j| [j as f32, 10.0 * j as f32, 0.8])
            .collect();
        let p = parse(&json(&[v]), ReadOptions::default()).unwrap();
        let xs: Vec<f32> = p.keypoints.iter().map(|k| k.x).collect();
        let expected: Vec<f32> = [
            0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
        ]
        .map(|j| j as f32)
        .to_vec();
        assert_eq!(xs, expected);
        assert_eq!(p.keypoints[8].y, 90.0); // RHip = BODY_25 9
        assert_eq!(p.num_present(), 18);
    }

    #[test]
    fn chooses_first_or_largest_person() {
        let small = coco18_values(0.0); // x span 17, y span 34
        let big: Vec<f32> = (0..18)
            .flat_map(|i| [5.0 * i as f32, 9.0 * i as f32, 0.7])
            .collect();
        let text = json(&[small.clone(), big.clone()]);
        let first = parse(&text, ReadOptions::default()).unwrap();
        assert_eq!(first, Pose::from_flat(&small).unwrap());
        let opts = ReadOptions {
            person: PersonChoice::Largest,
            ..Default::default()
        };
        let largest = parse(&text, opts).unwrap();
        assert_eq!(largest, Pose::from_flat(&big).unwrap());
        // An all-missing first entry is skipped by `First` too.
        let text = json(&[vec![0.0; 54], small.clone()]);
        assert_eq!(
            parse(&text, ReadOptions::default()).unwrap(),
            Pose::from_flat(&small).unwrap()
        );
    }

    #[test]
    fn no_person_is_an_error_or_all_missing() {
        for text in [
            "{\"version\":1.3,\"people\":[]}".to_string(),
            json(&[vec![0.0; 75]]),
        ] {
            let err = parse(&text, ReadOptions::default()).unwrap_err();
            match &err {
                Error::File { path, detail } => {
                    assert_eq!(path, Path::new("frame_000.json"));
                    assert!(detail.contains("no person"), "{detail}");
                }
                other => panic!("unexpected error {other:?}"),
            }
            let opts = ReadOptions {
                empty: EmptyFrame::AllMissing,
                ..Default::default()
            };
            assert_eq!(parse(&text, opts).unwrap(), Pose::missing());
        }
    }

    #[test]
    fn malformed_input_gives_errors_naming_the_file() {
        let bad = [
            "{\"version\":1.3,\"people\":[".to_string(),
            "{\"version\":1.3}".to_string(),
            "{\"people\":[{\"pose_keypoints_2d\":\"x\"}]}".to_string(),
            json(&[vec![1.0; 53]]),
            json(&[coco18_values(0.0), vec![1.0; 60]]),
        ];
        for text in &bad {
            match parse(text, ReadOptions::default()) {
                Err(Error::File { path, detail }) => {
                    assert_eq!(path, Path::new("frame_000.json"), "{detail}");
                }
                other => panic!("expected a file error for {text}, got {other:?}"),
            }
        }
        let err = parse(&json(&[vec![1.0; 53]]), ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("got 53"), "{err}");
        let missing = Path::new("/nonexistent/engine/pose.json");
        let err = read_pose_file(missing, &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(&err, Error::File { path, .. } if path == missing),
            "{err:?}"
        );
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = temp_dir("roundtrip");
        let mut v = coco18_values(3.25);
        v[3 * 4 + 2] = 0.0;
        let pose = Pose::from_flat(&v).unwrap();
        let path = dir.join("a.json");
        write_pose_file(&path, &pose).unwrap();
        assert_eq!(
            read_pose_file(&path, &ReadOptions::default()).unwrap(),
            pose
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("{\"version\":1.3,\"people\":[{\"pose_keypoints_2d\":["),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_a_folder_in_natural_order() {
        let dir = temp_dir("folder");
        for (name, x) in [
            ("v_10_keypoints.json", 10.0),
            ("v_2_keypoints.json", 2.0),
            ("v_1_keypoints.json", 1.0),
        ] {
            let mut p = Pose::missing();
            p.keypoints[0] = Keypoint::new(x, 1.0, 1.0);
            write_pose_file(&dir.join(name), &p).unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "not a pose").unwrap();
        let poses = read_pose_folder(&dir, &ReadOptions::default()).unwrap();
        let xs: Vec<f32> = poses.iter().map(|p| p.keypoints[0].x).collect();
        assert_eq!(xs, vec![1.0, 2.0, 10.0]);
        // A broken frame names itself.
        std::fs::write(dir.join("v_3_keypoints.json"), "{").unwrap();
        let err = read_pose_folder(&dir, &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("v_3_keypoints.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();

        let empty = temp_dir("empty");
        let err = read_pose_folder(&empty, &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(&err, Error::File { path, .. } if path == &empty),
            "{err:?}"
        );
        assert!(err.to_string().contains("no .json"));
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn natural_order_compares_numbers() {
        let mut names = vec!["f10", "f9", "f010", "f1a", "f1", "g0", "f"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, vec!["f", "f1", "f1a", "f9", "f10", "f010", "g0"]);
    }
}
