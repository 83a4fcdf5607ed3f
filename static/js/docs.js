// /docs: start Swagger UI (served from this server, app/web/docs.py) on this server's OpenAPI
// schema. A script file rather than an inline one: the page keeps the one Content-Security-Policy.
/* global SwaggerUIBundle */

SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
