// Small behaviours of the account and two-factor pages, without inline script.
//   button[data-confirm="question"]: asks before submitting (removing an email address).
//   textarea[data-recovery-codes]: a click selects the codes and copies them to the clipboard.
//   input[data-codes-saved]: until ticked, leaving the page asks whether the codes were saved.
(function () {
  'use strict'

  function warnBeforeLeaving (event) {
    event.preventDefault()
    event.returnValue = ''
  }

  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('[data-confirm]').forEach(function (button) {
      button.addEventListener('click', function (event) {
        if (!window.confirm(button.dataset.confirm)) event.preventDefault()
      })
    })

    document.querySelectorAll('textarea[data-recovery-codes]').forEach(function (area) {
      area.addEventListener('click', function () {
        area.select()
        if (navigator.clipboard) navigator.clipboard.writeText(area.value).catch(function () {})
      })
    })

    const saved = document.querySelector('input[data-codes-saved]')
    if (saved) {
      window.addEventListener('beforeunload', warnBeforeLeaving)
      saved.addEventListener('change', function () {
        if (saved.checked) window.removeEventListener('beforeunload', warnBeforeLeaving)
        else window.addEventListener('beforeunload', warnBeforeLeaving)
      })
    }
  })
})()
