"""Reference RoPE frequencies for rope_scaling_test.cc: HF transformers' modeling_rope_utils
semantics for yarn and longrope, written out plainly in numpy (float64).

Prints a JSON list of cases: {"name", "config" (a config.json), "inv_freq", "attention_factor"}.
"""
import json
import math

import numpy as np


def base_config(head_dim, theta, max_pos, **extra):
    heads = 4
    config = {"model_type": "qwen2", "hidden_size": heads * head_dim, "intermediate_size": 64,
              "num_hidden_layers": 1, "num_attention_heads": heads, "num_key_value_heads": 2,
              "vocab_size": 32, "rope_theta": theta, "max_position_embeddings": max_pos}
    config.update(extra)
    return config


def plain_inv_freq(head_dim, theta):
    return 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def yarn(config):
    rs = config["rope_scaling"]
    dim, base = config["hidden_size"] // config["num_attention_heads"], config["rope_theta"]
    original = rs.get("original_max_position_embeddings", config["max_position_embeddings"])
    factor = rs.get("factor", config["max_position_embeddings"] / original)

    def mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if "attention_factor" in rs:
        attention = rs["attention_factor"]
    elif rs.get("mscale") and rs.get("mscale_all_dim"):
        attention = mscale(factor, rs["mscale"]) / mscale(factor, rs["mscale_all_dim"])
    else:
        attention = mscale(factor)

    def correction_dim(rotations):
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(rs.get("beta_fast", 32)), correction_dim(rs.get("beta_slow", 1))
    if rs.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2) - low) / (high - low), 0, 1)
    extrapolation = 1 - ramp
    freq = plain_inv_freq(dim, base)
    return freq / factor * (1 - extrapolation) + freq * extrapolation, attention


def longrope(config):
    rs = config["rope_scaling"]
    dim, base = config["hidden_size"] // config["num_attention_heads"], config["rope_theta"]
    max_pos = config["max_position_embeddings"]
    original = rs.get("original_max_position_embeddings",
                      config.get("original_max_position_embeddings", max_pos))
    factor = rs.get("factor", max_pos / original)
    if "attention_factor" in rs:
        attention = rs["attention_factor"]
    else:
        attention = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))
    # The factors of the context lmserve serves: the long ones beyond the original context.
    ext = np.array(rs["long_factor"] if max_pos > original else rs["short_factor"])
    return 1.0 / (ext * base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)), attention


def cases():
    # Qwen3's long-context recipe (factor 4 over 32768), head_dim 128.
    yield "yarn qwen3", yarn, base_config(128, 1e6, 131072, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})
    # Qwen2.5's: "type" spelling, no original (= max_position_embeddings).
    yield "yarn qwen2.5", yarn, base_config(64, 1e6, 32768, rope_scaling={
        "type": "yarn", "factor": 4.0})
    # No factor: the context's stretch; explicit betas, no truncation.
    yield "yarn betas", yarn, base_config(32, 10000.0, 16384, rope_scaling={
        "rope_type": "yarn", "original_max_position_embeddings": 2048, "beta_fast": 16.0,
        "beta_slow": 2.0, "truncate": False})
    yield "yarn attention_factor", yarn, base_config(64, 500000.0, 65536, rope_scaling={
        "rope_type": "yarn", "factor": 8.0, "attention_factor": 0.75,
        "original_max_position_embeddings": 8192})
    yield "yarn mscale", yarn, base_config(64, 10000.0, 163840, rope_scaling={
        "rope_type": "yarn", "factor": 40.0, "mscale": 1.0, "mscale_all_dim": 0.707,
        "original_max_position_embeddings": 4096})
    rng = np.random.default_rng(7)
    short = [round(float(x), 4) for x in 1 + rng.random(16) * 0.5]
    long = [round(float(x), 4) for x in 1 + rng.random(16) * 40]
    # Phi-3 128k: original at the config's top level, long factors.
    yield "longrope phi3-128k", longrope, base_config(
        32, 10000.0, 131072, original_max_position_embeddings=4096,
        rope_scaling={"type": "longrope", "short_factor": short, "long_factor": long})
    # Phi-3's first "su" configs; a context within the original one keeps the short factors.
    yield "su within the original context", longrope, base_config(
        32, 10000.0, 4096, original_max_position_embeddings=4096,
        rope_scaling={"type": "su", "short_factor": short, "long_factor": long})
    yield "longrope explicit factors", longrope, base_config(32, 10000.0, 262144, rope_scaling={
        "rope_type": "longrope", "short_factor": short, "long_factor": long, "factor": 16.0,
        "attention_factor": 1.25, "original_max_position_embeddings": 8192})


def main():
    out = []
    for name, compute, config in cases():
        inv_freq, attention = compute(config)
        out.append({"name": name, "config": config, "inv_freq": [float(x) for x in inv_freq],
                    "attention_factor": float(attention)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
