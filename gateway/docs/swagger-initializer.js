// Swagger UI over the gateway's own OpenAPI document, which it serves beside this page
// (/docs/ and /openapi.json); replaces swagger-ui-dist's petstore example.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
