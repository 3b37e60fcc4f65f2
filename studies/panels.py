"""Where apps above ``studies`` add to its pages without ``studies`` importing them.

Higher apps register in their ``AppConfig.ready()``; ``studies`` works with nothing registered.

- Study panels: a template included on the study page, with the context its function gives for
  the request (``None``: not shown to this user). Shown in ``order``, then by name.
- Patient panels: the same on the patient page (the function gets the patient).
- Study actions: a button for one study (``StudyAction``, or ``None`` when this user may not take
  it), shown in the study page's header, beside the study in the home page's latest studies and the
  patient page, and under the study in the upload page's results.
- Links: a page another app serves in place of one of ``studies``' own (for instance a patient's
  own study page), as a function giving its URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from .models import Patient, Study

ContextFn = Callable[[HttpRequest, Study], "dict[str, Any] | None"]
PatientContextFn = Callable[[HttpRequest, Patient], "dict[str, Any] | None"]


@dataclass(frozen=True)
class StudyPanel:
    name: str
    template: str
    context_fn: ContextFn | None
    order: int


@dataclass(frozen=True)
class ShownPanel:
    name: str
    template: str
    context: dict[str, Any]


@dataclass(frozen=True)
class PatientPanel:
    name: str
    template: str
    context_fn: PatientContextFn | None
    order: int


@dataclass(frozen=True)
class StudyAction:
    """A button for one study: ``primary`` marks the step most users take next."""

    label: str
    url: str
    primary: bool = False


@dataclass(frozen=True)
class ShownAction:
    name: str
    label: str
    url: str
    primary: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "url": self.url, "primary": self.primary}


ActionFn = Callable[[HttpRequest, Study], "StudyAction | None"]


@dataclass(frozen=True)
class RegisteredAction:
    name: str
    action_fn: ActionFn
    order: int


_study_panels: dict[str, StudyPanel] = {}
_patient_panels: dict[str, PatientPanel] = {}
_study_actions: dict[str, RegisteredAction] = {}
_links: dict[str, Callable[..., str]] = {}

# Link names. PATIENT_HOME: the patient's home for their images (no argument);
# PATIENT_STUDY_PAGE: a patient's own page for one study (the study).
PATIENT_HOME = "patient-home"
PATIENT_STUDY_PAGE = "patient-study-page"


def register_study_panel(name: str, template: str, context_fn: ContextFn | None = None, order: int = 100) -> None:
    """Show ``template`` on the study page. Registering a name again replaces it."""
    _study_panels[name] = StudyPanel(name=name, template=template, context_fn=context_fn, order=order)


def study_panels(request: HttpRequest, study: Study) -> list[ShownPanel]:
    """The panels to include on ``study``'s page for this request, in order."""
    shown = []
    for panel in sorted(_study_panels.values(), key=lambda p: (p.order, p.name)):
        context = panel.context_fn(request, study) if panel.context_fn is not None else {}
        if context is not None:
            shown.append(ShownPanel(name=panel.name, template=panel.template, context=context))
    return shown


def register_patient_panel(
    name: str, template: str, context_fn: PatientContextFn | None = None, order: int = 100
) -> None:
    """Show ``template`` on the patient page. Registering a name again replaces it."""
    _patient_panels[name] = PatientPanel(name=name, template=template, context_fn=context_fn, order=order)


def patient_panels(request: HttpRequest, patient: Patient) -> list[ShownPanel]:
    """The panels to include on ``patient``'s page for this request, in order."""
    shown = []
    for panel in sorted(_patient_panels.values(), key=lambda p: (p.order, p.name)):
        context = panel.context_fn(request, patient) if panel.context_fn is not None else {}
        if context is not None:
            shown.append(ShownPanel(name=panel.name, template=panel.template, context=context))
    return shown


def register_study_action(name: str, action_fn: ActionFn, order: int = 100) -> None:
    """Offer ``action_fn(request, study)`` as a button for a study. Registering a name again replaces it."""
    _study_actions[name] = RegisteredAction(name=name, action_fn=action_fn, order=order)


def is_study_action(name: str) -> bool:
    return name in _study_actions


def study_actions(request: HttpRequest, study: Study) -> list[ShownAction]:
    """The buttons this request's user may use for ``study``, in order."""
    shown = []
    for registered in sorted(_study_actions.values(), key=lambda a: (a.order, a.name)):
        action = registered.action_fn(request, study)
        if action is not None:
            shown.append(ShownAction(name=registered.name, label=action.label, url=action.url, primary=action.primary))
    return shown


def register_link(name: str, url_fn: Callable[..., str]) -> None:
    """Offer the page ``url_fn(*args)`` as ``name`` (one of the link names above)."""
    _links[name] = url_fn


def link_url(name: str, *args: Any) -> str | None:
    """The registered page's URL, or None when no app offers one."""
    url_fn = _links.get(name)
    return url_fn(*args) if url_fn is not None else None
