// Runs PostHog's agent toolkit tool handlers (the code behind PostHog's MCP server) directly, with
// no model, against the server at POSTHOG_HOST with the personal API key POSTHOG_PERSONAL_API_KEY.
// Prints one JSON report: the tools the toolkit loaded and, per step, whether the handler succeeded
// and what it answered. test_agent_toolkit.py runs it and judges the report.
import { PostHogAgentToolkit } from "@posthog/agent-toolkit/tools";

const toolkit = new PostHogAgentToolkit({
  posthogApiToken: process.env.POSTHOG_PERSONAL_API_KEY,
  posthogApiBaseUrl: process.env.POSTHOG_HOST,
});
const context = toolkit.getContext();
const tools = await toolkit.getTools();
const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool]));
const steps = [];

async function call(label, toolName, params) {
  const tool = byName[toolName];
  if (!tool) {
    steps.push({ label, tool: toolName, ok: false, error: "tool not loaded" });
    return null;
  }
  try {
    const answer = await tool.handler(context, tool.schema.parse(params));
    const text = answer.content.map((part) => part.text).join("");
    let result;
    try {
      result = JSON.parse(text);
    } catch {
      result = text;
    }
    steps.push({ label, tool: toolName, ok: true, result });
    return result;
  } catch (error) {
    steps.push({ label, tool: toolName, ok: false, error: String(error && error.message ? error.message : error) });
    return null;
  }
}

const everyone = { groups: [{ properties: [], rollout_percentage: 100 }] };
await call("create flag", "create-feature-flag", {
  name: "Toolkit flag",
  key: "toolkit-flag",
  description: "Made by PostHog's agent toolkit",
  filters: everyone,
  active: true,
  tags: ["agent"],
});
await call("list flags", "feature-flag-get-all", {});
const byKey = await call("get flag by key", "feature-flag-get-definition", { flagKey: "toolkit-flag" });
if (byKey && byKey.id) {
  await call("get flag by id", "feature-flag-get-definition", { flagId: byKey.id });
}
await call("update flag", "update-feature-flag", {
  flagKey: "toolkit-flag",
  data: { name: "Toolkit flag, renamed", description: "still ignored", active: false },
});
await call("delete flag", "delete-feature-flag", { flagKey: "toolkit-flag" });

const created = await call("create experiment", "experiment-create", {
  name: "Toolkit experiment",
  description: "Does the new checkout convert better?",
  feature_flag_key: "toolkit-experiment",
  primary_metrics: [{ name: "Pageviews", metric_type: "mean", event_name: "$pageview" }],
  secondary_metrics: [{ name: "Checkout funnel", metric_type: "funnel", event_name: "$pageview", funnel_steps: ["$pageview", "purchase"] }],
  variants: [
    { key: "control", name: "Control", rollout_percentage: 50 },
    { key: "test", name: "Test", rollout_percentage: 50 },
  ],
  minimum_detectable_effect: 20,
  draft: true,
});
const experimentId = created && created.id;
if (experimentId) {
  await call("get experiment", "experiment-get", { experimentId });
  await call("list experiments", "experiment-get-all", {});
  await call("update experiment", "experiment-update", {
    experimentId,
    data: { name: "Toolkit experiment, renamed", description: "Clearer hypothesis" },
  });
  await call("launch experiment", "experiment-update", { experimentId, data: { launch: true } });
  await call("end experiment", "experiment-update", {
    experimentId,
    data: { conclude: "won", conclusion_comment: "Test wins" },
  });
  await call("archive experiment", "experiment-update", { experimentId, data: { archive: true } });
}

process.stdout.write(JSON.stringify({ tools: Object.keys(byName).sort(), steps }));
