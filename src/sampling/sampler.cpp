// PLACEHOLDER: replaced by the sampler chain.
