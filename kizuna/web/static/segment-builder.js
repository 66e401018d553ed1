// The segment builder's live count: after a pause in typing, ask /segments/count (the same rows as the
// form) and show its answer. Choosing another field redraws the form with that field's operators and
// values. Without script the form's count button does both.
(function () {
  "use strict";
  var form = document.getElementById("segment-form");
  var out = document.getElementById("segment-count");
  if (!form || !out || !window.fetch) { return; }
  var timer = null;
  var asked = 0;
  function rows() {
    var query = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (/^[fov][0-9]+$/.test(key)) { query.append(key, value); }
    });
    return query.toString();
  }
  function count() {
    var mine = ++asked;
    fetch("/segments/count?" + rows(), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        if (mine !== asked) { return; }  // an older answer, overtaken by a newer question
        out.textContent = answer.text;
        out.classList.toggle("error", !answer.ok);
      })
      .catch(function () {});
  }
  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(count, 400);
  }
  form.addEventListener("input", function (event) {
    if (!event.target.classList.contains("seg-field")) { later(); }
  });
  form.addEventListener("change", function (event) {
    if (event.target.classList.contains("seg-field")) {
      document.getElementById("count-button").click();
    } else {
      later();
    }
  });
}());
