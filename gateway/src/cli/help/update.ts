/** `vigil update --help`, in a module of its own so main.ts can print it without loading the command. */
export const UPDATE_HELP = `usage: vigil update <command> [options]

Asks the running gateway's update agents (updates.enabled) through its local HTTP endpoint.

commands:
  status           the update agents' state: installed releases, last failure, counters
  check            check the chain for releases now (instead of at the next cron tick)
  retry [ID]       forget that release ID failed (default: the model's last failed release) and
                   check again: a failed release is otherwise not tried again until a different
                   release becomes active

options:
  --device ID      retry: forget the firmware failure on this device only, a decimal id (default:
                   every device)
  --wait SECONDS   check, retry: wait up to this long for the check to finish (default 30; 0: do
                   not wait); a candidate model in its shadow phase may take longer
  --url URL        the gateway's endpoint (default: http.host and http.port of --config, else
                   http://127.0.0.1:9479)
  -c, --config FILE  the gateway's JSON config, to find its endpoint and, with http.authTokenFile,
                   the access token and (check, retry) the operator token in its dataDir
  --json           print JSON: the status after the wait ({enabled, status, done}); with --wait 0
                   the gateway's answer to the request ({accepted, status} and, for retry, retried)
  -h, --help       this text

Exit status: 0 done (or still running after --wait), 1 the gateway does not answer, has updates
disabled, or the retried release was refused again, 2 usage.
`;
