#!/usr/bin/env python3
"""Write tests/fixtures/templates/: tiny offline tokenizers with chat templates in the style of
Llama 3.1, Qwen3, Mistral and Zephyr, plus what transformers renders and tokenizes for a few
conversations, and the loss mask under Basin's rule (see src/text/encode.rs).

Rust tests (src/text/encode.rs, src/text/chat_template.rs) compare against these files exactly.
Deterministic: rerunning gives the same files. Needs `tokenizers` and `transformers`.
"""
import json
import shutil
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "templates"

LLAMA3 = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role in ["user", "assistant"]) %}
        {{- raise_exception("Unknown role " + message.role) }}
    {%- endif %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

QWEN3 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- "# Tools\\n\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {{- '<tool_call>\\n' + (tool_call.arguments | tojson) + '\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""

# Mistral-style: system message folded into the first user turn; strict user/assistant alternation.
MISTRAL = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'] + '[/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token }}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported!') }}
    {%- endif %}
{%- endfor %}
"""

# Mistral v0.3's real placement of the system message (before the *last* user turn): the prompt
# prefix then differs from the start of the full conversation, which Basin must reject.
MISTRAL_V3_SYSTEM_LAST = MISTRAL.replace("loop.first and system_message", "loop.last and system_message")

# Zephyr: no whitespace control at all, relies on trim_blocks / lstrip_blocks.
ZEPHYR = """{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>\\n' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>\\n' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>\\n'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}"""

# Exercises tojson (transformers' own: ensure_ascii=False, Python separators), items(), dict
# literals, indent, sort_keys and filters; compared on the rendered string only.
TOJSON_PROBE = """{% for m in messages %}
{{ m | tojson }}
{% for k, v in m.items() %}{{ k }}={{ v | length }};{% endfor %}

{% endfor %}
{{ messages[-1] | tojson(indent=2) }}
{{ {'b': [1, 2.5, none, true], 'a': 'x"y\\\\z\\n\\t<&>'} | tojson(sort_keys=true) }}
{{ messages[0].content.upper() }}|{{ messages[0].content.split(' ') | join(',') }}|{{ '  pad  '.strip() }}|{{ 'a-b-c'.replace('-', '+') }}
{{ bos_token }}{{ eos_token }}
"""

SYSTEM = "You are a terse assistant. Answer in one line."
CONVERSATIONS = {
    "single": [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ],
    "system_multi": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Add 12 and 30."},
        {"role": "assistant", "content": "12 + 30 = 42."},
        {"role": "user", "content": "  And double it?  "},
        {"role": "assistant", "content": "Double 42 is 84.\n"},
    ],
    "unicode": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Traduis « bonjour » en 日本語, s'il te plaît."},
        {"role": "assistant", "content": "こんにちは — konnichiwa. <&> \"quoted\""},
    ],
    "thinking": [
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "<think>\nIt has no divisors but 1 and 7.\n</think>\n\nYes, 7 is prime."},
    ],
}
BAD_ORDER = [
    {"role": "user", "content": "Hi"},
    {"role": "user", "content": "Hello again"},
    {"role": "assistant", "content": "Hello."},
]

CORPUS_EXTRA = [
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "assistant user system Today Date Cutting Knowledge December",
]

# name -> (template, special tokens, bos, eos, conversations)
CASES = {
    "llama3": (LLAMA3, ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
               "<|begin_of_text|>", "<|end_of_text|>", ["single", "system_multi", "unicode"]),
    "qwen3": (QWEN3, ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"],
              None, "<|im_end|>", ["single", "system_multi", "unicode", "thinking"]),
    "mistral": (MISTRAL, ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
                "<s>", "</s>", ["single", "system_multi", "unicode"]),
    "mistral_system_last": (MISTRAL_V3_SYSTEM_LAST, ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
                            "<s>", "</s>", ["single", "system_multi"]),
    "zephyr": (ZEPHYR, ["<unk>", "<s>", "</s>", "<|user|>", "<|system|>", "<|assistant|>"],
               "<s>", "</s>", ["single", "system_multi", "unicode"]),
    "tojson_probe": (TOJSON_PROBE, ["<s>", "</s>"], "<s>", "</s>", ["system_multi", "unicode"]),
}


def train_tokenizer(specials: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [m["content"] for conv in CONVERSATIONS.values() for m in conv] + CORPUS_EXTRA + [SYSTEM] * 3
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    return tok


def end_of_turn_id(tok, template: str):
    vocab = tok.get_vocab()
    for name in ("<|im_end|>", "<|eot_id|>"):
        if name in vocab and name in template:
            return vocab[name]
    return tok.eos_token_id


def encode(tok, template: str, messages):
    """Basin's loss-mask rule, written independently of the Rust code."""
    full_text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    prefix_text = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    ids = tok(full_text, add_special_tokens=False)["input_ids"]
    prefix = tok(prefix_text, add_special_tokens=False)["input_ids"]
    out = {"text": full_text, "prefix_text": prefix_text, "input_ids": ids}
    if ids[: len(prefix)] != prefix:
        out["error"] = "prefix"
        return out
    eot = end_of_turn_id(tok, template)
    end = len(ids)
    for i in range(len(prefix), len(ids)):
        if ids[i] == eot:
            end = i + 1
            break
    out["target_mask"] = [len(prefix) <= i < end for i in range(len(ids))]
    return out


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for name, (template, specials, bos, eos, conv_names) in CASES.items():
        raw = train_tokenizer(specials)
        kwargs = {"eos_token": eos}
        if bos is not None:
            kwargs["bos_token"] = bos
        tok = PreTrainedTokenizerFast(tokenizer_object=raw, chat_template=template, **kwargs)
        folder = OUT / name
        tok.save_pretrained(str(folder))
        (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
        cases = []
        for conv in conv_names:
            case = {"conversation": conv, "messages": CONVERSATIONS[conv]}
            case.update(encode(tok, template, CONVERSATIONS[conv]))
            cases.append(case)
        expected = {"bos_token": bos, "eos_token": eos, "cases": cases}
        if name == "mistral":
            try:
                tok.apply_chat_template(BAD_ORDER, tokenize=False)
                raise SystemExit("mistral template accepted a bad role order")
            except Exception as e:  # jinja2 TemplateError
                expected["bad_order"] = {"messages": BAD_ORDER, "error": str(e)}
        (folder / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1), encoding="utf-8")
        # Keep only what the Rust tests read.
        for f in folder.iterdir():
            if f.name not in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "expected.json"):
                f.unlink()
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
