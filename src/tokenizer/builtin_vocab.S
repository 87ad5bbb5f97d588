// GPT-2's merges (vocab.bpe from OpenAI's release, see data/README.md), built into the
// binary byte for byte so that tokenizing needs no files. .incbin keeps the build fast (a
// 456 KB C++ array initializer takes the compiler far longer) and the data identical to the
// published file. The path is found through the include directory src/ that CMake passes.
    .section .rodata
    .balign 16
    .globl gpt2_builtin_vocab_bpe
    .hidden gpt2_builtin_vocab_bpe
gpt2_builtin_vocab_bpe:
    .incbin "tokenizer/data/vocab.bpe"
    .globl gpt2_builtin_vocab_bpe_end
    .hidden gpt2_builtin_vocab_bpe_end
gpt2_builtin_vocab_bpe_end:
    .byte 0

    // No executable stack for the program that links this.
    .section .note.GNU-stack,"",@progbits
