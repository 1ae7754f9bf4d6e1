// @serialport/binding-mock ships types its package.json "exports" do not expose to NodeNext
// resolution; this declares the part the tests use (same shapes as its dist/index.d.ts).
declare module "@serialport/binding-mock" {
  export interface MockPortBinding {
    recording: Buffer;
    emitData(data: Buffer | string | number[]): void;
    read(buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }>;
  }
  export const MockBinding: {
    createPort(path: string, options?: { echo?: boolean; record?: boolean; readyData?: Buffer }): void;
    reset(): void;
    list(): Promise<unknown[]>;
    open(options: { path: string; baudRate: number }): Promise<MockPortBinding>;
  };
}
