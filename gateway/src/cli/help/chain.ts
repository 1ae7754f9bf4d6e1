/** `vigil chain --help`, in a module of its own so main.ts can print it without loading the command. */
export const CHAIN_HELP = `usage: vigil chain <command> [options]

commands:
  deploy             deploy VigilRegistry + VigilReleases and write a deployment file
  verify             check that deployed code matches the committed artifacts
  register-gateway   register a gateway's signing key at a site (caller: site operator)
  grant-operator     grant a site's operator role (caller: default admin)

Run "vigil chain <command> --help" for a command's options.
`;
