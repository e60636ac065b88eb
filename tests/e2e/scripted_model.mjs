// A tiny llama checkpoint whose greedy decoding writes a chosen text, for deterministic
// end-to-end tests of what the server does with a model's output. It is a bigram model:
// attention and MLP outputs are zero, so the last position's hidden state is the embedding
// of the last token; embeddings are one-hot on a slot per token, and lm_head maps each
// slot to the token that must follow. Written in a temp dir at test time (f16 safetensors)
// next to a real tokenizer copied from the fixtures.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bin, clientFor, fixturesDir, startServer } from './helpers.mjs';

// The real Qwen3 tokenizer and chat template, and the end of its prompts.
export const qwen3TokenizerDir = path.join(fixturesDir, 'tokenizers', 'qwen3');
export const qwen3PromptEnd = '<|im_start|>assistant\n';

const F16_ONE = 0x3c00;
const F16_TEN = 0x4900;

export function tokenize(tokenizerDir, text) {
  const out = execFileSync(bin, ['tokenize', '--model', tokenizerDir, '--no-special', '--json', text], {
    encoding: 'utf8',
  });
  return JSON.parse(out).ids;
}

function writeSafetensors(file, tensors) {
  const header = {};
  let offset = 0;
  for (const { name, shape, data } of tensors) {
    header[name] = { dtype: 'F16', shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const buffer = Buffer.alloc(8 + json.length + offset);
  buffer.writeBigUInt64LE(BigInt(json.length), 0);
  buffer.write(json, 8, 'latin1');
  let pos = 8 + json.length;
  for (const { data } of tensors) {
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(buffer, pos);
    pos += data.byteLength;
  }
  writeFileSync(file, buffer);
}

// Writes into `dir` a model that, after any prompt ending like `promptEnd`, generates
// exactly `output` (whose last token must be an end-of-sequence token, e.g. <|im_end|>).
// Every token of the prompt end and of the output must be distinct (a bigram has no memory).
export function writeScriptedModel(dir, { tokenizerDir, promptEnd, output }) {
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
    copyFileSync(path.join(tokenizerDir, file), path.join(dir, file));
  }
  const tokenizer = JSON.parse(readFileSync(path.join(tokenizerDir, 'tokenizer.json'), 'utf8'));
  const vocab = 1 + [...Object.values(tokenizer.model.vocab), ...tokenizer.added_tokens.map((t) => t.id)]
    .reduce((a, b) => Math.max(a, b), 0);
  const ids = tokenize(tokenizerDir, output);
  const inputs = [tokenize(tokenizerDir, promptEnd).at(-1), ...ids.slice(0, -1)];
  if (new Set(inputs).size !== inputs.length) {
    throw new Error(`scripted model: a token repeats in ${JSON.stringify(promptEnd + output)}`);
  }
  const hidden = 16 * Math.ceil(inputs.length / 16);
  const heads = 2;
  const intermediate = 16;

  const embed = new Uint16Array(vocab * hidden);
  const lmHead = new Uint16Array(vocab * hidden);
  inputs.forEach((token, slot) => {
    embed[token * hidden + slot] = F16_ONE;
    lmHead[ids[slot] * hidden + slot] = F16_TEN;
  });
  const zeros = (rows, cols) => new Uint16Array(rows * cols);
  const ones = (n) => new Uint16Array(n).fill(F16_ONE);
  const layer = 'model.layers.0';
  writeSafetensors(path.join(dir, 'model.safetensors'), [
    { name: 'model.embed_tokens.weight', shape: [vocab, hidden], data: embed },
    { name: `${layer}.input_layernorm.weight`, shape: [hidden], data: ones(hidden) },
    { name: `${layer}.self_attn.q_proj.weight`, shape: [hidden, hidden], data: zeros(hidden, hidden) },
    { name: `${layer}.self_attn.k_proj.weight`, shape: [hidden, hidden], data: zeros(hidden, hidden) },
    { name: `${layer}.self_attn.v_proj.weight`, shape: [hidden, hidden], data: zeros(hidden, hidden) },
    { name: `${layer}.self_attn.o_proj.weight`, shape: [hidden, hidden], data: zeros(hidden, hidden) },
    { name: `${layer}.post_attention_layernorm.weight`, shape: [hidden], data: ones(hidden) },
    { name: `${layer}.mlp.gate_proj.weight`, shape: [intermediate, hidden], data: zeros(intermediate, hidden) },
    { name: `${layer}.mlp.up_proj.weight`, shape: [intermediate, hidden], data: zeros(intermediate, hidden) },
    { name: `${layer}.mlp.down_proj.weight`, shape: [hidden, intermediate], data: zeros(hidden, intermediate) },
    { name: 'model.norm.weight', shape: [hidden], data: ones(hidden) },
    { name: 'lm_head.weight', shape: [vocab, hidden], data: lmHead },
  ]);
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_attention_heads: heads,
    num_key_value_heads: heads,
    head_dim: hidden / heads,
    num_hidden_layers: 1,
    vocab_size: vocab,
    rms_norm_eps: 1e-6,
    rope_theta: 10000.0,
    max_position_embeddings: 4096,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    torch_dtype: 'float16',
    eos_token_id: ids.at(-1),
  }));
  return { ids };
}

// Starts lmserve on a Qwen3-tokenizer scripted model writing `output`; returns the server, an
// official openai client for it and stop() (which also removes the model).
export async function serveScripted(output, extraArgs = []) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmserve-scripted-'));
  writeScriptedModel(dir, { tokenizerDir: qwen3TokenizerDir, promptEnd: qwen3PromptEnd, output });
  const server = await startServer(extraArgs, { model: dir });
  return {
    server,
    client: await clientFor(server),
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
