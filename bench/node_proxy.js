// The official Node proxy as its README sets it up: Express 5, express.json(), the
// Express adapter of @fal-ai/server-proxy on its default route. Port from argv[2].
"use strict";
const express = require("express");
const falProxy = require("@fal-ai/server-proxy/express");

const app = express();
app.use(express.json({ limit: "10mb" }));
app.all(falProxy.route, falProxy.handler);
app.listen(Number(process.argv[2]), "127.0.0.1");
