// main_ops.cpp: reduce.cu and layout.cu (included there, after its helpers).
#pragma once

// ---- reduce -----------------------------------------------------------------------------------

// reduce.rs `reduce_plan`: adjacent axes of the same role merge (1-sized axes play no role),
// block = a block per output.
static ReduceArgs reduce_plan(int op, const std::vector<long>& dims, const std::vector<bool>& mask, bool& block) {
    std::vector<std::pair<long, bool>> groups;
    for (size_t i = 0; i < dims.size(); ++i) {
        if (dims[i] == 1) continue;
        if (!groups.empty() && groups.back().second == mask[i]) groups.back().first *= dims[i];
        else groups.push_back({dims[i], mask[i]});
    }
    std::vector<std::pair<long, long>> kept, red;
    long stride = 1;
    for (size_t i = groups.size(); i-- > 0;) {
        (groups[i].second ? red : kept).push_back({groups[i].first, stride});
        stride *= groups[i].first;
    }
    std::reverse(kept.begin(), kept.end());
    std::reverse(red.begin(), red.end());
    ReduceArgs a{};
    a.out_n = 1, a.red_n = 1;
    for (auto& k : kept) a.out_n *= k.first;
    for (auto& r : red) a.red_n *= r.first;
    a.kept_rank = (int)kept.size(), a.red_rank = (int)red.size(), a.op = op;
    a.scale = op == REDUCE_MEAN ? (float)(1.0 / (double)std::max(a.red_n, 1LL)) : 1.f;
    for (size_t i = 0; i < kept.size(); ++i) a.kept_dims[i] = kept[i].first, a.kept_strides[i] = kept[i].second;
    for (size_t i = 0; i < red.size(); ++i) a.red_dims[i] = red[i].first, a.red_strides[i] = red[i].second;
    const bool inner_reduced = !groups.empty() && groups.back().second;
    block = (inner_reduced && a.red_n >= 32) || (a.out_n < 2048 && a.red_n >= 256);
    return a;
}

// The keepdim output index of contiguous element i of dims.
static long out_index(long i, const std::vector<long>& dims, const std::vector<bool>& mask) {
    long o = 0, mul = 1;
    for (size_t a = dims.size(); a-- > 0;) {
        const long idx = i % dims[a];
        i /= dims[a];
        if (!mask[a]) o += idx * mul, mul *= dims[a];
    }
    return o;
}

static void reduce_case(const std::vector<long>& dims, const std::vector<bool>& mask, bool with_nan) {
    const long n = prod(dims);
    long out_n = 1, count = 1;
    for (size_t i = 0; i < dims.size(); ++i) (mask[i] ? count : out_n) *= dims[i];
    Buf x = rand_int(n, 7);  // ties
    for (long i = 0; i < n; ++i) x.p()[i] += 0.25f * (float)(i % 3);
    if (with_nan) x.p()[n / 2] = NAN;
    std::vector<double> sum(out_n, 0.0), mag(out_n, 0.0), mx(out_n, -INFINITY);
    std::vector<long> hits(out_n, 0);
    for (long i = 0; i < n; ++i) {
        const long o = out_index(i, dims, mask);
        sum[o] += x[i], mag[o] += std::fabs(x[i]);
        if (x[i] > mx[o] || std::isnan(x[i])) mx[o] = x[i];
    }
    for (long i = 0; i < n; ++i) {
        const long o = out_index(i, dims, mask);
        hits[o] += x[i] == mx[o] || (std::isnan(x[i]) && std::isnan(mx[o]));
    }
    bool planned_block = false;
    const std::string shape = dims_str(dims) + " mask ";
    std::string m;
    for (bool b : mask) m += b ? '1' : '0';
    for (int op : {REDUCE_SUM, REDUCE_MEAN, REDUCE_MAX}) {
        const ReduceArgs a = reduce_plan(op, dims, mask, planned_block);
        if (a.out_n != out_n) {
            printf("reduce plan of %s: %lld outputs, want %ld FAIL\n", shape.c_str(), a.out_n, out_n);
            ++failures;
            return;
        }
        std::vector<double> ref(out_n), s(out_n);
        for (long o = 0; o < out_n; ++o) {
            ref[o] = op == REDUCE_MAX ? mx[o] : op == REDUCE_MEAN ? sum[o] / (double)count : sum[o];
            // f64 sums rounded once (mean: also the f32 scale): |ref| plus a sliver of Σ|x|.
            s[o] = op == REDUCE_MAX ? 0 : std::fabs(ref[o]) + mag[o] / 33554432.0;
        }
        const char* opn = op == REDUCE_SUM ? "sum" : op == REDUCE_MEAN ? "mean" : "max";
        // Both variants accept any plan; the launcher's grid, then a 2-block grid (loops).
        for (int variant = 0; variant < 2; ++variant) {
            const bool blk = variant == 0 ? planned_block : !planned_block;
            for (uint3 grid : {blk ? rows(out_n) : elems(out_n), uint3{2, 1, 1}}) {
                Buf y(out_n);
                if (blk) emu::launch(grid, [&] { reduce_block_f32(a, x.p(), y.p()); });
                else emu::launch(grid, [&] { reduce_thread_f32(a, x.p(), y.p()); });
                const std::string name = "reduce_" + std::string(blk ? "block " : "thread ") + opn + " " + shape + m +
                                         (variant ? "" : " (planned)") + " grid " + std::to_string(grid.x);
                check(name, y, ref, op == REDUCE_SUM ? 1.0 / 8388608 : 1.0 / 4194304, s);
            }
        }
        if (op != REDUCE_MAX) continue;
        // Max backward: dy shared by the tied maxima; y is the f32 max (NaN where one is).
        Buf y(out_n), dy = randn(out_n);
        for (long o = 0; o < out_n; ++o) y.p()[o] = (float)mx[o];
        std::vector<double> dref(n), ds(n);
        for (long i = 0; i < n; ++i) {
            const long o = out_index(i, dims, mask);
            const bool hit = x[i] == mx[o] || (std::isnan(x[i]) && std::isnan(mx[o]));
            dref[i] = hit ? (double)dy[o] / (double)hits[o] : 0.0;
            ds[i] = std::fabs(dref[i]);
        }
        for (int variant = 0; variant < 2; ++variant) {
            const bool blk = variant == 0 ? planned_block : !planned_block;
            Buf dx(n);
            if (blk) emu::launch(rows(out_n), [&] { reduce_max_backward_block_f32(a, x.p(), y.p(), dy.p(), dx.p()); });
            else emu::launch(elems(out_n), [&] { reduce_max_backward_thread_f32(a, x.p(), y.p(), dy.p(), dx.p()); });
            check("reduce_max_backward_" + std::string(blk ? "block " : "thread ") + shape + m, dx, dref,
                  1.0 / 8388608, ds);
        }
    }
}

static void reduce_tests() {
    reduce_case({3, 5, 7}, {false, true, false}, false);
    reduce_case({3, 5, 7}, {true, false, true}, false);
    reduce_case({2, 3, 1, 4, 5}, {true, false, true, false, true}, false);
    reduce_case({1, 1}, {true, false}, false);
    reduce_case({4, 1000}, {false, true}, false);
    reduce_case({300, 2}, {true, false}, true);
    reduce_case({37, 1, 33}, {true, true, true}, false);
    reduce_case({5, 9, 1}, {false, false, true}, false);  // nothing reduced: copies
}

// ---- layout -----------------------------------------------------------------------------------

// layout.rs `strided_args` / `copy_strided`, checked against the direct gather.
static void strided_case(const char* what, const std::vector<long>& dims, const std::vector<long>& strides,
                         long offset, Buf& x) {
    std::vector<std::vector<long>> s{strides};
    std::vector<long> d;
    coalesce(dims, s, d);
    StridedArgs a{};
    a.n = prod(dims), a.offset = offset, a.rank = (int)d.size();
    for (size_t i = 0; i < d.size(); ++i) a.dims[i] = d[i], a.strides[i] = s[0][i];
    std::vector<double> ref(a.n);
    for (long i = 0; i < a.n; ++i) {
        long rest = i, off = offset;
        for (size_t k = dims.size(); k-- > 0;) off += rest % dims[k] * strides[k], rest /= dims[k];
        ref[i] = x[off];
    }
    for (uint3 grid : {elems(a.n), uint3{1, 1, 1}}) {
        Buf y(a.n);
        emu::launch(grid, [&] { copy_strided_f32(a, x.p(), y.p()); });
        check(std::string("copy_strided_f32 ") + what + " " + dims_str(dims) + " grid " + std::to_string(grid.x), y,
              ref, 0);
    }
}

static void transpose_case(long batch, long r, long c) {
    const TransposeArgs a{batch, r, c, 0};
    Buf x = randn(batch * r * c);
    std::vector<double> ref(batch * r * c);
    for (long b = 0; b < batch; ++b)
        for (long i = 0; i < r; ++i)
            for (long j = 0; j < c; ++j) ref[(b * c + j) * r + i] = x[(b * r + i) * c + j];
    // layout.rs `transpose`: grid (⌈cols/32⌉, ⌈rows/32⌉, batch), block (32, 8); then a smaller
    // grid so every axis loops.
    const uint3 grids[] = {{grid_1d(cdiv(c, TRANSPOSE_TILE)), grid_yz(cdiv(r, TRANSPOSE_TILE)), grid_yz(batch)},
                           {1, 1, 1}};
    for (uint3 grid : grids) {
        Buf y(batch * r * c);
        emu::launch(grid, {TRANSPOSE_TILE, TRANSPOSE_ROWS, 1}, [&] { transpose_tiled_f32(a, x.p(), y.p()); });
        check("transpose_tiled_f32 " + dims_str({batch, r, c}) + " grid " + std::to_string(grid.x) + "x" +
                  std::to_string(grid.y) + "x" + std::to_string(grid.z),
              y, ref, 0);
    }
}

// layout.rs `concat_slice`, once per input: [outer, sizes_i, inner] into [outer, Σ sizes, inner].
static void concat_case(long outer, const std::vector<long>& sizes, long inner) {
    long total = 0;
    for (long s : sizes) total += s;
    const long row = total * inner;
    std::vector<Buf> xs;
    std::vector<double> ref(outer * row);
    long at = 0;
    for (long s : sizes) {
        xs.push_back(randn(outer * s * inner));
        for (long o = 0; o < outer; ++o)
            for (long j = 0; j < s * inner; ++j) ref[o * row + at + j] = xs.back()[o * s * inner + j];
        at += s * inner;
    }
    Buf y(outer * row);
    at = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
        const ConcatArgs a{outer, sizes[k] * inner, row, at};
        emu::launch(elems(outer * a.width), [&] { concat_slice_f32(a, xs[k].p(), y.p()); });
        at += a.width;
    }
    check("concat_slice_f32 outer " + std::to_string(outer) + " sizes " + dims_str(sizes) + " inner " +
              std::to_string(inner),
          y, ref, 0);
}

static void layout_tests() {
    Buf x = randn(2 * 3 * 4 * 5 + 7);
    // permute [2,3,4,5] -> (0,2,3,1): dims [2,4,5,3]
    strided_case("permute", {2, 4, 5, 3}, {60, 5, 1, 20}, 0, x);
    // narrow [2,3,4,5] along dim 2 to 1..3, with offset
    strided_case("narrow", {2, 3, 2, 5}, {60, 20, 5, 1}, 5, x);
    // broadcast [3,1,5] -> [2,3,4,5] (stride 0 repeats), 1-sized dims in the middle
    strided_case("broadcast", {2, 3, 1, 4, 5}, {0, 5, 0, 0, 1}, 7, x);
    strided_case("scalar", {1, 1}, {0, 0}, 3, x);
    strided_case("flip-free 1000", {1000}, {0}, 0, x);
    transpose_case(3, 37, 70);
    transpose_case(1, 1, 33);
    transpose_case(2, 64, 32);
    concat_case(3, {2, 1, 3}, 5);
    concat_case(1, {4, 7}, 1);
    concat_case(70, {1, 2}, 3);
}
