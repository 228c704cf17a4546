#include "engine/backend/dnnl/dnnl_util.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "dnnl_debug.h"

namespace cnnserve::dnnl_internal {

Md PlainMd(const Dims& dims, memory::data_type type) {
  const Dims d = dims.empty() ? Dims{1} : dims;
  memory::dims strides(d.size());
  int64_t stride = 1;
  for (size_t i = d.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= d[i];
  }
  return Md(d, type, strides);
}

Md AnyMd(const Dims& dims, memory::data_type type) { return Md(dims, type, Tag::any); }

memory::data_type ComputeType(Precision precision) { return precision == Precision::kBf16 ? kBf16 : kF32; }

std::string DataTypeName(const Md& md) {
  if (md.data.ndims == 0) return "";
  return dnnl_dt2str(md.data.data_type);
}

dnnl::primitive_attr ScratchpadAttr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::primitive_attr FusedAttr(bool relu) {
  dnnl::primitive_attr attr = ScratchpadAttr();
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  return attr;
}

std::string MdToString(const Md& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.ndims == 0) return "";
  switch (d.format_kind) {
    case dnnl_format_kind_any:
      return "any";
    case dnnl_format_kind_wino:
      return "wino";
    case dnnl_format_kind_rnn_packed:
      return "rnn_packed";
    case dnnl_blocked:
      break;
    default:
      return "opaque";
  }
  const dnnl_blocking_desc_t& blk = d.format_desc.blocking;
  std::vector<int> order(d.ndims);
  for (int i = 0; i < d.ndims; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return blk.strides[a] > blk.strides[b]; });
  std::vector<bool> blocked(d.ndims, false);
  for (int i = 0; i < blk.inner_nblks; ++i) blocked[blk.inner_idxs[i]] = true;
  std::string out;
  for (int i : order) out += static_cast<char>((blocked[i] ? 'A' : 'a') + i);
  for (int i = 0; i < blk.inner_nblks; ++i) {
    out += std::to_string(blk.inner_blks[i]) + static_cast<char>('a' + blk.inner_idxs[i]);
  }
  return out;
}

Status DnnlStatus(const std::string& node, const dnnl::error& e) {
  std::string message =
      "oneDNN failed on node '" + node + "': " + e.what() + " (" + dnnl_status2str(e.status) + ")";
  if (e.status == dnnl_unimplemented) return UnimplementedError(std::move(message));
  if (e.status == dnnl_out_of_memory) return ResourceExhaustedError(std::move(message));
  return InternalError(std::move(message));
}

bool IsReference(const dnnl::primitive_desc_base& pd) {
  return std::string(pd.impl_info_str()).find("ref") != std::string::npos;
}

int ResolveThreads(int num_threads) { return num_threads > 0 ? num_threads : std::max(1, omp_get_num_procs()); }

}  // namespace cnnserve::dnnl_internal
