// Passkeys and security keys (WebAuthn) for the allauth pages, without inline script.
//
// A button declares what it does with data attributes:
//   data-webauthn="create" | "get" | "login"
//   data-credential="<id of the hidden input that receives the credential>"
//   data-options="<id of a json_script block with creation_options / request_options>"
//   data-passwordless="<id of the 'passwordless' checkbox>" (create only, optional)
// "login" fetches fresh request options from the action of the button's form.
// Relies on allauth's webauthn-json library (window.webauthnJSON), loaded before this file.
(function () {
  'use strict'

  function showError (button, error) {
    const host = button.closest('form') || button.parentElement
    let box = document.querySelector('[data-webauthn-error]')
    if (!box) {
      box = document.createElement('p')
      box.className = 'message error'
      box.setAttribute('role', 'alert')
      box.setAttribute('data-webauthn-error', '')
      host.parentNode.insertBefore(box, host)
    }
    const cancelled = error && (error.name === 'NotAllowedError' || error.name === 'AbortError')
    box.textContent = cancelled
      ? 'The security key request was cancelled or timed out. Try again.'
      : 'Your browser or key could not complete the request' + (error && error.message ? ': ' + error.message : '.')
    box.hidden = false
  }

  function readOptions (button) {
    const block = document.getElementById(button.dataset.options)
    return block ? JSON.parse(block.textContent) : {}
  }

  function creationOptions (button) {
    const options = JSON.parse(JSON.stringify(readOptions(button).creation_options))
    const checkboxId = button.dataset.passwordless
    const checkbox = checkboxId ? document.getElementById(checkboxId) : null
    if (checkbox) {
      const selection = options.publicKey.authenticatorSelection || (options.publicKey.authenticatorSelection = {})
      selection.residentKey = checkbox.checked ? 'required' : 'discouraged'
      selection.requireResidentKey = checkbox.checked
      if (checkbox.checked) selection.userVerification = 'required'
    }
    return options
  }

  async function loginOptions (button) {
    const response = await fetch(button.form.action, { method: 'GET', headers: { Accept: 'application/json' }, credentials: 'same-origin' })
    if (!response.ok) throw new Error('the server did not send passkey options (' + response.status + ')')
    return (await response.json()).request_options
  }

  const actions = {
    create: async function (button) { return window.webauthnJSON.create(creationOptions(button)) },
    get: async function (button) { return window.webauthnJSON.get(readOptions(button).request_options) },
    login: async function (button) { return window.webauthnJSON.get(await loginOptions(button)) }
  }

  function bind (button) {
    const action = actions[button.dataset.webauthn]
    if (!action) return
    button.addEventListener('click', async function (event) {
      event.preventDefault()
      if (!window.webauthnJSON || !window.webauthnJSON.supported()) {
        showError(button, new Error('this browser does not support passkeys or security keys'))
        return
      }
      const input = document.getElementById(button.dataset.credential)
      try {
        button.disabled = true
        const credential = await action(button)
        input.value = JSON.stringify(credential)
        input.form.submit()
      } catch (error) {
        button.disabled = false
        showError(button, error)
      }
    })
  }

  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('[data-webauthn]').forEach(bind)
  })
})()
