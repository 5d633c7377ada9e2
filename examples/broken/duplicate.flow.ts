// DELIBERATELY BROKEN: the second half of duplicate-workflow. broken.flow.ts in this
// folder also defines the workflow id "broken_demo"; both ids are reported.
import { workflow, shell } from "tideflow";

export const hello = shell("hello", "echo hello");

// duplicate-workflow: "broken_demo" is already defined by broken.flow.ts
export default workflow("broken_demo", {
  tasks: [hello],
});
