/** An {@link EventOutput} made of an encoder and a publisher: events in, MQTT messages out. */
import type { AlertEncoder } from "./encoder.ts";
import type { GatewayEvent, StatusEvent } from "./events.ts";
import type { AlertPublisher } from "./publisher.ts";
import type { EventOutput } from "./service.ts";

export class EncodedOutput implements EventOutput {
  constructor(
    readonly encoder: AlertEncoder,
    readonly publisher: AlertPublisher,
  ) {}

  open(will: StatusEvent, onReconnect?: () => void): Promise<void> {
    return this.publisher.open(this.encoder.will(will), onReconnect);
  }

  connected(): boolean {
    return this.publisher.connected?.() ?? true;
  }

  async emit(e: GatewayEvent): Promise<void> {
    const msgs = this.encoder.encode(e);
    if (msgs.length === 1) return this.publisher.publish(msgs[0]!);
    await Promise.all(msgs.map((m) => this.publisher.publish(m)));
  }

  close(): Promise<void> {
    return this.publisher.close();
  }
}
