/* device_query.cu: what the worker reports about its GPU before any model is loaded (name, UUID,
 * memory), for registration and health. */
extern "C" {
#include "engine/engine.h"
}
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" ws_status engine_cuda_device_query(int device, engine_memory *out, ws_error *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return ws_fail(err, WS_ERR_DEVICE, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
    if (device < 0 || device >= n)
        return ws_fail(err, WS_ERR_INVALID_ARG, "GPU %d: %d device(s) present", device, n);
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess)
        return ws_fail(err, WS_ERR_DEVICE, "cudaGetDeviceProperties(%d): %s", device,
                       cudaGetErrorString(e));
    /* bounded copy: prop.name (256 bytes) never fits snprintf's truncation check */
    const size_t nl = strnlen(prop.name, sizeof out->device_name - 1);
    memcpy(out->device_name, prop.name, nl);
    out->device_name[nl] = '\0';
    const unsigned char *u = (const unsigned char *)prop.uuid.bytes;
    snprintf(out->device_uuid, sizeof out->device_uuid,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    int prev = 0;
    e = cudaGetDevice(&prev);
    if (e == cudaSuccess) e = cudaSetDevice(device);
    size_t free_b = 0, total_b = 0;
    if (e == cudaSuccess) e = cudaMemGetInfo(&free_b, &total_b);
    cudaSetDevice(prev);
    if (e != cudaSuccess)
        return ws_fail(err, WS_ERR_DEVICE, "cudaMemGetInfo(%d): %s", device, cudaGetErrorString(e));
    out->device_total = total_b;
    out->device_free = free_b;
    return WS_OK;
}
