#!/usr/bin/env python3
"""Writes the binary seeds of the fuzz corpora: tiny GGUF and safetensors files.

Run from anywhere: python3 tests/fuzz/make_corpus.py. The output is deterministic, so the
committed files can be checked against a re-run. The text seeds (tokenizer.json, templates,
request bodies) are written by hand in corpus/.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_value(vtype, value):
    scalar = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
    if vtype == STRING:
        return gguf_string(value)
    if vtype == ARRAY:
        elem_type, items = value
        out = struct.pack("<IQ", elem_type, len(items))
        for item in items:
            out += gguf_value(elem_type, item)
        return out
    return struct.pack(scalar[vtype], value)


def gguf(metadata, tensors=(), version=3, alignment=32):
    """metadata: [(key, type, value)]; tensors: [(name, dims, ggml_type, bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, vtype, value in metadata:
        out += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)
    offset = 0
    for name, dims, ggml_type, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for _, _, _, data in tensors:
        out += data + b"\0" * (-len(data) % alignment)
    return out


def spm_vocab():
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    tokens += ["\u2581", "\u2581a", "\u2581the", "he", "llo", "\u2581hello", "o", "l", "e", "h"]
    types = [2, 3, 3] + [6] * 256 + [1] * 10
    scores = [0.0] * 259 + [-float(i) for i in range(10)]
    return [
        ("general.architecture", STRING, "llama"),
        ("general.alignment", U32, 32),
        ("tokenizer.ggml.model", STRING, "llama"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.scores", ARRAY, (F32, scores)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.unknown_token_id", U32, 0),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
        ("tokenizer.chat_template", STRING, "{{ bos_token }}{{ messages[0]['content'] }}"),
    ]


def gpt2_vocab():
    # Byte-level BPE: the 256 byte symbols GPT-2 maps bytes to, a few merges, one special.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + \
        list(range(0xAE, 0x100))
    mapping, n = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + n)
            n += 1
    tokens = [mapping[b] for b in range(256)] + ["he", "ll", "hell", "hello", "\u0120w",
                                                  "<|endoftext|>"]
    merges = ["h e", "l l", "he ll", "hell o", "\u0120 w"]
    types = [1] * 261 + [3]
    return [
        ("general.architecture", STRING, "gpt2"),
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.pre", STRING, "llama-bpe"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.merges", ARRAY, (STRING, merges)),
        ("tokenizer.ggml.eos_token_id", U32, 261),
        ("tokenizer.ggml.add_bos_token", BOOL, False),
    ]


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, bytes)] laid out back to back."""
    header, offset, data = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    f32 = lambda *xs: struct.pack("<%df" % len(xs), *xs)
    tensors = [
        ("token_embd.weight", [4, 2], 0, f32(*range(8))),  # F32, 2 rows of 4
        ("output_norm.weight", [4], 1, struct.pack("<4e", 1, 1, 1, 1)),  # F16
        ("blk.0.attn_q.weight", [32, 1], 8, b"\x00\x3c" + bytes(range(32))),  # Q8_0 block
    ]
    write("fuzz_gguf", "spm_vocab.gguf", gguf(spm_vocab()))
    write("fuzz_gguf", "gpt2_vocab.gguf", gguf(gpt2_vocab()))
    write("fuzz_gguf", "tensors.gguf", gguf([
        ("general.architecture", STRING, "llama"),
        ("llama.block_count", U32, 1),
        ("llama.rope.freq_base", F32, 10000.0),
        ("general.flags", ARRAY, (BOOL, [True, False])),
        ("general.counts", ARRAY, (I64, [-1, 2 ** 40])),
        ("general.ratio", F64, 0.5),
        ("general.small", ARRAY, (U8, [1, 2, 3])),
    ], tensors))
    write("fuzz_gguf", "v2_empty.gguf", gguf([], version=2))

    write("fuzz_safetensors", "two_tensors.safetensors", safetensors([
        ("model.embed_tokens.weight", "F32", [2, 4], f32(*range(8))),
        ("model.norm.weight", "BF16", [4], b"\x80\x3f" * 4),
    ], {"format": "pt"}))
    write("fuzz_safetensors", "scalar_and_empty.safetensors", safetensors([
        ("scale", "F16", [], b"\x00\x3c"),
        ("empty", "I32", [0, 3], b""),
    ]))
    write("fuzz_safetensors", "no_tensors.safetensors", safetensors([], {"a": "b"}))


if __name__ == "__main__":
    main()
