/** `node dist/server.js --stdio`: the Tideflow language server for any LSP client. */
import { ProposedFeatures, createConnection } from "vscode-languageserver/node";
import { startServer } from "./server";

const connection = createConnection(ProposedFeatures.all);
// A bug in one request must not take the editor's diagnostics down with it.
process.on("uncaughtException", (e) => connection.console.error(`uncaught: ${e.stack ?? e.message}`));
process.on("unhandledRejection", (e) => connection.console.error(`unhandled rejection: ${String(e)}`));
startServer(connection);
