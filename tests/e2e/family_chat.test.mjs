// Chat on the Qwen3, Gemma 3 and Phi-3 tiny models (HF and GGUF copies) with each family's
// real chat template: the served prompt is byte for byte Python Jinja2's rendering, the chat
// completion evaluates exactly its tokens and generates what a completion of those tokens does.
// The tiny models carry stories260K's tokenizer, which has no template, so --chat-template
// gives the family's (../shared/fixtures/templates).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { fixturesDir, postJson, readJson, renderWithJinja2, startServer } from './helpers.mjs';

const tinyDir = path.join(fixturesDir, 'models', 'tiny');
const templatesDir = path.join(fixturesDir, 'templates');

const families = [
  { name: 'qwen3', template: 'Qwen-Qwen3-0.6B' },
  { name: 'gemma3', template: 'google-gemma-3-it' },
  { name: 'phi3', template: 'microsoft-Phi-3.5-mini-instruct' },
];

const conversation = [
  { role: 'system', content: 'You are a storyteller.' },
  { role: 'user', content: 'Tell me about a cat.' },
  { role: 'assistant', content: 'Once upon a time there was a cat named Tom.' },
  { role: 'user', content: 'What did Tom like to eat?' },
];

// The template variables transformers would pass: special_tokens_map.json for the HF copy;
// a GGUF vocabulary names only BOS and EOS.
function specialTokens(copy) {
  if (copy.kind === 'hf') return readJson(path.join(copy.model, 'special_tokens_map.json'));
  return { bos_token: '<s>', eos_token: '</s>' };
}

for (const family of families) {
  const templateFile = path.join(templatesDir, `${family.template}.jinja`);
  const copies = [
    { kind: 'hf', model: path.join(tinyDir, family.name, 'hf') },
    { kind: 'gguf', model: path.join(tinyDir, family.name, `${family.name}-F32.gguf`) },
  ];
  for (const copy of copies) {
    describe(`${family.name} ${copy.kind} with the ${family.template} template`, () => {
      let server;
      before(async () => {
        server = await startServer(['--chat-template', templateFile], { model: copy.model });
      });
      after(async () => { await server?.stop(); });

      const expected = () => renderWithJinja2({
        template: readFileSync(templateFile, 'utf8'),
        messages: conversation,
        add_generation_prompt: true,
        variables: specialTokens(copy),
      });

      test('the rendered prompt is Python Jinja2\'s, byte for byte', async () => {
        const res = await postJson(server.baseURL, '/apply-template', { messages: conversation });
        assert.equal(res.status, 200);
        const { prompt } = await res.json();
        const reference = expected();
        assert.ok(reference.includes('What did Tom like to eat?'), reference);
        assert.equal(prompt, reference);
        const props = await (await fetch(`${server.baseURL}/props`)).json();
        assert.equal(props.chat_template_source, '--chat-template');
      });

      test('the chat completion evaluates that prompt\'s tokens and generates', async () => {
        const tokenized = await postJson(server.baseURL, '/tokenize', {
          content: expected(), add_special: false, parse_special: true,
        });
        assert.equal(tokenized.status, 200);
        const { tokens } = await tokenized.json();
        assert.ok(tokens.length > 20, `${tokens.length} prompt tokens`);

        const chat = await postJson(server.baseURL, '/v1/chat/completions', {
          messages: conversation, max_tokens: 12, temperature: 0,
        });
        assert.equal(chat.status, 200);
        const body = await chat.json();
        assert.equal(body.usage.prompt_tokens, tokens.length);
        assert.ok(body.usage.completion_tokens >= 1);
        const message = body.choices[0].message;
        assert.equal(message.role, 'assistant');

        // The same tokens as a plain completion: the chat answer is their continuation.
        const completion = await postJson(server.baseURL, '/v1/completions', {
          prompt: tokens, max_tokens: 12, temperature: 0,
        });
        assert.equal(completion.status, 200);
        const plain = await completion.json();
        assert.equal(plain.usage.prompt_tokens, tokens.length);
        assert.equal(plain.usage.completion_tokens, body.usage.completion_tokens);
        assert.equal(plain.choices[0].finish_reason, body.choices[0].finish_reason);
        assert.equal((message.reasoning_content ?? '') + (message.content ?? ''),
          plain.choices[0].text);
        assert.ok(plain.choices[0].text.length > 0, 'generated no text');
      });
    });
  }
}

// Without a template (these tiny models have none) chat still works, on the documented
// role_mapping prompt, and the server says so when it starts.
test('without --chat-template the fallback prompt is announced and used', async () => {
  const server = await startServer([], { model: path.join(tinyDir, 'qwen3', 'qwen3-F32.gguf') });
  try {
    assert.match(server.stderr(), /the model has no chat template: chat requests get mlx_lm's role_mapping prompt/);
    const props = await (await fetch(`${server.baseURL}/props`)).json();
    assert.equal(props.chat_template_source, 'none');
    const res = await postJson(server.baseURL, '/apply-template', { messages: conversation });
    const { prompt } = await res.json();
    assert.equal(prompt, "ASSISTANT's RULE: You are a storyteller.\nUSER: Tell me about a cat.\n" +
      'ASSISTANT: Once upon a time there was a cat named Tom.\nUSER: What did Tom like to eat?\n' +
      'ASSISTANT:');
  } finally {
    await server.stop();
  }
});
