/* engine_cuda.cu: the CUDA backend (placeholder until the engine lands). */
extern "C" {
#include "engine/engine.h"
}
#include <cuda_runtime.h>

static ws_status cuda_open(const qwen2_model *m, const engine_options *opt, engine **out,
                           ws_error *err) {
    return ws_fail(err, WS_ERR_UNSUPPORTED, "the CUDA engine is not implemented yet");
}

extern "C" bool engine_cuda_device_present(void) {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

extern "C" const engine_ops engine_cuda_ops = {
    "cuda", cuda_open, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
};
