/**
 * The Tideflow runner process (dist/runner.js). Its engine, journal and WebSocket API
 * are the runner issue's work; until then it only says so.
 */
process.stderr.write("tideflow runner: not built yet in this version; `tideflow check` and `tideflow dag` work without it.\n");
process.exit(2);
