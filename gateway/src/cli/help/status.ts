/** `vigil status --help`, in a module of its own so main.ts can print it without loading the command. */
export const STATUS_HELP = `usage: vigil status [options]

Prints a one-screen summary of the running gateway from its local HTTP endpoint: readiness and
what is failing, devices and rates, counters, rejections by reason, active alerts (value beside
threshold, receipt leaf), batches and anchoring, store, models. Exits 0 when the gateway is
ready, 1 when it is not ready or does not answer.

  --url URL        the gateway's endpoint (default: http.host and http.port of --config, else
                   http://127.0.0.1:9479)
  -c, --config FILE  the gateway's JSON config, to find its endpoint
  --json           print the summary and the alerts as one JSON object instead
  -h, --help       this text
`;
