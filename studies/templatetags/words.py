"""Filters for every template (a builtin library): DICOM codes in words for people
(studies.vocabulary)."""

from __future__ import annotations

from django import template

from studies import vocabulary

register = template.Library()


@register.filter
def modality_words(code: str) -> str:
    """``{{ series.modality|modality_words }}``: "MRI" for MR."""
    return vocabulary.modality_in_words(code or "")


@register.filter
def modalities_in_words(value) -> str:
    """A study's ModalitiesInStudy ("CT\\MR", or a list of codes) in words ("CT, MRI")."""
    return vocabulary.modalities_in_words(value or "")


@register.filter
def body_part_words(code: str) -> str:
    """``{{ series.body_part|body_part_words }}``: "Lower back (lumbar spine)" for LSPINE."""
    return vocabulary.body_part_in_words(code or "")


@register.filter
def body_parts_in_words(value) -> str:
    """Body parts ("CHEST\\ABDOMEN", or a list) in words ("Chest, Abdomen")."""
    return vocabulary.body_parts_in_words(value or "")


@register.filter
def modality_word_list(codes) -> list[str]:
    """The modalities as a list of words, each once (CR and DX are both "X-ray"), for badges."""
    return [word for word in vocabulary.modalities_in_words(codes or "").split(", ") if word]
