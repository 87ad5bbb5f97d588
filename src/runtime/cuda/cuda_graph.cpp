#include "runtime/cuda/cuda_graph.h"

#include <exception>
#include <string>

#include "common/log.h"

namespace gpt2::cuda_backend {

void StepGraphs::run(cudaStream_t stream, const StepKey& key, const std::function<void()>& record,
                     const std::function<void()>& forget) {
  if (!enabled_) {
    record();
    return;
  }
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    forget();
    // Capture, then instantiate. If either fails for a graph-specific reason, the same ops run
    // eagerly (see the header). An error that is not about graphs recurs in the eager run and
    // propagates from there.
    GPT2_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    std::string failure;
    try {
      record();
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "a non-standard exception";
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream, &graph);
    if (failure.empty() && end != cudaSuccess)
      failure = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(end);
    cudaGraphExec_t exec = nullptr;
    if (failure.empty()) {
      const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
      if (err != cudaSuccess) {
        failure = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(err);
        exec = nullptr;
      }
    }
    if (graph) cudaGraphDestroy(graph);
    if (!failure.empty()) {
      cudaGetLastError();  // clear the capture's (non-sticky) error
      forget();
      if (++failures_ >= 2) enabled_ = false;
      log_note("CUDA graph capture of the decode step failed (" + failure + "); running it without graphs" +
               (enabled_ ? " (capture retried at the next decode step)" : ""));
      record();
      return;
    }
    it = graphs_.try_emplace(key).first;
    it->second.reset(exec);
  }
  GPT2_CUDA_CHECK(cudaGraphLaunch(it->second, stream));
  forget();
}

}  // namespace gpt2::cuda_backend
