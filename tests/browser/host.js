// The test host: what an MCP host that renders apps does with reve-mcp, built on the MCP Apps
// SDK's host side (app-bridge) and the MCP TypeScript client. Bundled by `run.mjs`; never
// shipped. `window.__reveConfig` says where the server is and which tool to call with which
// arguments; what happened is left in `window.__reveHost` for the driver.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { AppBridge, PostMessageTransport, getToolUiResourceUri, RESOURCE_MIME_TYPE } from "@modelcontextprotocol/ext-apps/app-bridge";

// The hosts' default policy for an app with no declared domains: inline code, data: pictures,
// no connections anywhere.
const DEFAULT_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
  "img-src 'self' data:; media-src 'self' data:; connect-src 'none'; font-src 'none'; frame-src 'none'";

const host = (window.__reveHost = { sizes: [], received: [] });

async function main() {
  const config = window.__reveConfig;
  const client = new Client(
    { name: "reve-test-host", version: "1.0.0" },
    {
      capabilities: { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: [RESOURCE_MIME_TYPE] } } },
      // `config.protocol` pins a revision (2026-07-28: `server/discover`, no `initialize`);
      // without it the client speaks the 2025 era, as most hosts do.
      ...(config.protocol ? { versionNegotiation: { mode: { pin: config.protocol } } } : {}),
    },
  );
  await client.connect(new StreamableHTTPClientTransport(new URL(config.mcpUrl)));
  host.protocol = client.getNegotiatedProtocolVersion();
  // What a host that pings the server before it shows a view learns: 2026-07-28 has no ping
  // (this client refuses to send it; the server would answer -32601).
  host.ping = await client.ping().then(() => ({ ok: true }), (error) => ({ ok: false, code: error.code, message: String(error.message) }));

  const { tools } = await client.listTools();
  const tool = tools.find((tool) => tool.name === config.tool);
  const uri = getToolUiResourceUri(tool);
  host.viewerUri = uri;
  const read = await client.readResource({ uri });
  const contents = read.contents[0];
  host.viewerMimeType = contents.mimeType;
  if (contents.mimeType !== RESOURCE_MIME_TYPE) throw new Error("the viewer is " + contents.mimeType);

  const iframe = document.createElement("iframe");
  iframe.id = "viewer";
  iframe.title = "reve viewer";
  iframe.sandbox = "allow-scripts";
  document.body.append(iframe);
  // `config.host` adds capabilities beyond proxying the server (updateModelContext,
  // downloadFile, message) and display modes; what the view asks of them is recorded.
  const extra = config.host || {};
  const bridge = new AppBridge(
    client,
    { name: "reve-test-host", version: "1.0.0" },
    { serverTools: {}, serverResources: {}, ...(extra.capabilities || {}) },
    {
      hostContext: {
        theme: "light",
        displayMode: "inline",
        ...(extra.displayModes ? { availableDisplayModes: extra.displayModes } : {}),
        containerDimensions: { width: 760, maxHeight: 900 },
      },
    },
  );
  const record = (method, result) => async (params) => {
    host.received.push({ method, params });
    return result(params);
  };
  if (extra.capabilities?.updateModelContext) bridge.onupdatemodelcontext = record("ui/update-model-context", () => ({}));
  if (extra.capabilities?.downloadFile) bridge.ondownloadfile = record("ui/download-file", () => ({}));
  if (extra.capabilities?.message) bridge.onmessage = record("ui/message", () => ({}));
  if (extra.displayModes) bridge.onrequestdisplaymode = record("ui/request-display-mode", (params) => ({ mode: params.mode }));
  bridge.onsizechange = ({ height }) => {
    host.sizes.push(height);
    if (height) iframe.style.height = height + "px";
  };
  const initialized = new Promise((resolve) => (bridge.oninitialized = resolve));
  await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
  iframe.srcdoc = contents.text.replace("<head>", `<head><meta http-equiv="Content-Security-Policy" content="${DEFAULT_CSP}">`);
  await initialized;

  const args = config.arguments;
  await bridge.sendToolInput({ arguments: args });
  const result = await client.callTool({ name: config.tool, arguments: args });
  host.firstStatus = result.structuredContent?.status;
  host.jobId = result.structuredContent?.job_id;
  await bridge.sendToolResult(result);
  host.setTheme = (theme) => bridge.sendHostContextChange({ theme });
}

main().catch((error) => {
  host.error = String(error && error.stack || error);
});
