"""DICOM codes in words for people (studies.vocabulary and its template filters)."""

from __future__ import annotations

from django.template import Context, Template

from studies.vocabulary import body_part_in_words, body_parts_in_words, modalities_in_words, modality_in_words


def test_modalities_in_words_name_each_once_and_keep_unknown_codes():
    assert modalities_in_words("CT\\DOC") == "CT, Document (PDF)"
    assert modalities_in_words(["CR", "DX", "XC"]) == "X-ray, Photo"
    assert modality_in_words("mr") == "MRI"
    assert modality_in_words("ZZ") == "ZZ"
    assert modalities_in_words("") == ""


def test_body_parts_in_words():
    assert body_part_in_words("LSPINE") == "Lower back (lumbar spine)"
    assert body_parts_in_words(["CHEST", "ABDOMEN", "CHEST"]) == "Chest, Abdomen"
    assert body_part_in_words("ELBOW ") == "Elbow"
    assert body_part_in_words("TAIL") == "TAIL"


def test_the_filters_are_builtin_in_every_template():
    text = Template(
        "{{ m|modality_words }}|{{ ms|modalities_in_words }}|{{ b|body_part_words }}|"
        "{% for w in ms|modality_word_list %}[{{ w }}]{% endfor %}"
    ).render(Context({"m": "US", "ms": "MR\\XC", "b": "HEADNECK"}))
    assert text == "Ultrasound|MRI, Photo|Head and neck|[MRI][Photo]"
