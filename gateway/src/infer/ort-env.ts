// onnxruntime-node 1.30 records telemetry in ~/.cache/Microsoft/DeveloperTools/.onnxruntime and
// tries to upload it to mobile.events.data.microsoft.com (seen with strace on this machine). A
// factory gateway has no business calling out; this runs before onnxruntime is loaded
// (ort.ts imports it first), so every session, worker and tool starts with telemetry off.
process.env.ORT_DISABLE_TELEMETRY ??= "1";
export {};
