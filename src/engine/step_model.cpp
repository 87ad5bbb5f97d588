#include "engine/step_model.h"

#include "common/error.h"
#include "model/gpt2.h"
#include "tokenizer/tokenizer.h"

namespace gpt2 {

void StepModel::top_k(int, int, TopTokens&) { throw Error("internal: this model does not offer top_k"); }

struct Gpt2StepModel::State {
  Outputs out;
};

Gpt2StepModel::Gpt2StepModel(Gpt2& model, int n_slots)
    : model_(&model),
      kv_(model.make_kv_cache(n_slots)),
      host_logits_(mul_sizes({static_cast<size_t>(model.limits().max_logit_rows),
                              static_cast<size_t>(model.config().n_vocab), sizeof(float)}),
                   "the logits read back"),
      state_(std::make_unique<State>()) {}
Gpt2StepModel::~Gpt2StepModel() = default;

int Gpt2StepModel::n_vocab() const { return model_->config().n_vocab; }
int Gpt2StepModel::n_ctx() const { return model_->config().n_ctx; }
int Gpt2StepModel::max_rows() const { return model_->limits().max_rows; }
int Gpt2StepModel::max_sequences() const { return model_->limits().max_sequences; }
int Gpt2StepModel::max_logit_rows() const { return model_->limits().max_logit_rows; }

void Gpt2StepModel::forward(const Batch& batch) {
  state_->out = Outputs{};
  model_->forward(batch, kv_, state_->out);
}

void Gpt2StepModel::logits(std::vector<float>& out) {
  const Tensor& t = state_->out.logits;
  if (t.empty()) throw Error("internal: no logits: the last step asked for none");
  out.resize(static_cast<size_t>(t.numel()));
  model_->backend().read(out.data(), t);
}

int Gpt2StepModel::max_top_k() const { return Backend::kMaxTopK; }

void Gpt2StepModel::top_k(int n_cols, int k, TopTokens& top) {
  const Tensor& t = state_->out.logits;
  if (t.empty()) throw Error("internal: no logits: the last step asked for none");
  top.k = k;
  top.ids.resize(static_cast<size_t>(t.rows) * k);
  top.logits.resize(top.ids.size());
  top.invalid.resize(static_cast<size_t>(t.rows));
  model_->backend().top_k(t, n_cols, k, top.ids.data(), top.logits.data(), top.invalid.data());
}

namespace {

class DecoderStream : public TokenStream {
 public:
  explicit DecoderStream(const Tokenizer& tokenizer) : decoder_(tokenizer) {}
  std::string push(int32_t id) override { return decoder_.push(id); }
  std::string finish() override { return decoder_.finish(); }

 private:
  StreamDecoder decoder_;
};

}  // namespace

std::unique_ptr<TokenStream> TokenizerText::stream() const { return std::make_unique<DecoderStream>(*tokenizer_); }

}  // namespace gpt2
