"""The small page every example serves at ``GET /``."""

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>falproxy example ({framework})</title>
<h1>falproxy example: {framework}</h1>
<p>The fal proxy is served at <code>{route}</code>. In the browser:</p>
<pre>import {{ fal }} from "@fal-ai/client";
fal.config({{ proxyUrl: "{route}" }});</pre>
"""


def page(framework: str, route: str) -> str:
    return PAGE.format(framework=framework, route=route)
