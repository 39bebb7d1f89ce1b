/* The report page: signing asks for a confirmation first (a signed report cannot be changed). */
(function () {
  "use strict";
  document.querySelectorAll("[data-report-form] [data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });
})();
