"""Prompt templates by name, as Chatchat's prompt_name selects them."""

from __future__ import annotations

KB_PROMPTS = {
    "default": (
        "<指令>根据已知信息，简洁和专业地回答问题。如果无法从中得到答案，请说“根据已知信息无法回答该问题”，"
        "不允许在答案中添加编造成分。</指令>\n<已知信息>{context}</已知信息>\n<问题>{question}</问题>"
    ),
    "text": "<已知信息>{context}</已知信息>\n<问题>{question}</问题>",
    "empty": ("请你回答我的问题:\n{question}\n\n"),
}
LLM_PROMPTS = {"default": "{question}", "with_history": "{question}", "py": "{question}"}


def kb_prompt(name: str, context: str, question: str) -> str:
    template = KB_PROMPTS.get(name, KB_PROMPTS["default"])
    return template.format(context=context, question=question)


def llm_prompt(name: str, question: str) -> str:
    return LLM_PROMPTS.get(name, LLM_PROMPTS["default"]).format(question=question)
