/** onnxruntime-node, loaded with its telemetry off (ort-env.ts). Import onnxruntime from here. */
import "./ort-env.ts";
export * from "onnxruntime-node";
