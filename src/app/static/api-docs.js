// /api/docs: Swagger UI on our OpenAPI document. "Authorize" takes a bearer token (from
// POST /api/tokens) for the session of this tab only; "Try it out" then calls the API.
(() => {
  "use strict";
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null, // no badge fetched from swagger.io
    persistAuthorization: false, // a token is never written to localStorage
    tryItOutEnabled: false,
    displayRequestDuration: true,
  });
})();
