/** Test helper: an in-memory serial line between the firmware update agent and a simulated MCU. */
import type { FirmwareUpdateAgent } from "../../gateway/src/updates/firmware-agent.ts";
import {
  decodeFrame,
  encodeFrame,
  FrameType,
  FwReason,
  FwResult,
  FwState,
  type Frame,
} from "../../gateway/src/protocol/frame.ts";
import type { SimFirmware } from "../../device-sim/src/firmware/index.ts";

/**
 * An in-memory line to a simulated MCU (replies come back a turn later, as over a wire); `busy`
 * makes the device answer every offer REFUSED/BUSY as one that holds another release does.
 */
export function line(agent: FirmwareUpdateAgent, fw: SimFirmware) {
  const sent: Frame[] = [];
  const l = {
    name: "mem",
    busy: false,
    sent,
    send: (f: Frame): void => {
      const frame = decodeFrame(encodeFrame(f));
      sent.push(frame);
      const back = (r: Frame): void => void setImmediate(() => agent.onFrame(decodeFrame(encodeFrame(r)), l));
      setImmediate(() => {
        if (l.busy && frame.type === FrameType.FwOffer) {
          back({
            ...fw.status(),
            state: FwState.Ready,
            result: FwResult.Refused,
            reason: FwReason.BUSY,
            releaseId: frame.releaseId,
          });
          return;
        }
        const r = fw.handle(frame);
        if (r.reply) back(r.reply);
        if (r.reboot)
          setImmediate(() => {
            fw.boot();
            fw.confirm();
            back(fw.status());
          });
      });
    },
  };
  return l;
}
