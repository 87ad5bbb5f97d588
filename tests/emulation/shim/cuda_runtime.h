// Emulation shim for <cuda_runtime.h>: everything lives in gpt2emu.h (tests/emulation).
#pragma once
#include "gpt2emu.h"
