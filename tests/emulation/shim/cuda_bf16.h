// Emulation shim for <cuda_bf16.h>: everything lives in gpt2emu.h (tests/emulation).
#pragma once
#include "gpt2emu.h"
