/**
 * Static evaluation of literals. Anything that is not a literal (a variable, a call, a
 * spread, an interpolated template) comes back as `dynamic` with the reason, never guessed.
 */
import type { TSESTree } from "@typescript-eslint/typescript-estree";

type Node = TSESTree.Node;

export type Value =
  | { kind: "string"; value: string; node: Node }
  | { kind: "number"; value: number; node: Node }
  | { kind: "boolean"; value: boolean; node: Node }
  | { kind: "array"; items: Value[]; node: Node }
  | { kind: "object"; props: Property[]; node: Node }
  | { kind: "identifier"; name: string; node: Node }
  | { kind: "call"; node: TSESTree.CallExpression }
  | { kind: "function"; node: Node }
  | { kind: "dynamic"; why: string; node: Node };

export interface Property {
  key: string;
  keyNode: Node;
  value: Value;
}

/** Options nest a few levels at most; beyond this a value is reported, not walked. */
const MAX_DEPTH = 32;

export function evaluate(node: Node, depth = 0): Value {
  if (depth > MAX_DEPTH) return { kind: "dynamic", why: "it is nested too deeply", node };
  switch (node.type) {
    case "Literal":
      if (typeof node.value === "string") return { kind: "string", value: node.value, node };
      if (typeof node.value === "number") return { kind: "number", value: node.value, node };
      if (typeof node.value === "boolean") return { kind: "boolean", value: node.value, node };
      return { kind: "dynamic", why: "it is not a string, number or boolean literal", node };
    case "TemplateLiteral":
      if (node.expressions.length === 0) {
        return { kind: "string", value: node.quasis.map((q) => q.value.cooked ?? q.value.raw).join(""), node };
      }
      return { kind: "dynamic", why: "the template interpolates values", node };
    case "UnaryExpression":
      if ((node.operator === "-" || node.operator === "+") && node.argument.type === "Literal" && typeof node.argument.value === "number") {
        return { kind: "number", value: node.operator === "-" ? -node.argument.value : node.argument.value, node };
      }
      return { kind: "dynamic", why: "it is an expression", node };
    case "TSAsExpression":
    case "TSSatisfiesExpression":
    case "TSNonNullExpression":
    case "TSTypeAssertion":
      return evaluate(node.expression, depth + 1);
    case "ArrayExpression": {
      const items: Value[] = [];
      for (const el of node.elements) {
        if (el === null) continue;
        if (el.type === "SpreadElement") return { kind: "dynamic", why: "the array spreads another value", node: el };
        items.push(evaluate(el, depth + 1));
      }
      return { kind: "array", items, node };
    }
    case "ObjectExpression": {
      const props: Property[] = [];
      for (const p of node.properties) {
        if (p.type === "SpreadElement") return { kind: "dynamic", why: "the object spreads another value", node: p };
        const key = propertyKey(p);
        if (key === undefined) return { kind: "dynamic", why: "a key is computed", node: p.key };
        props.push({ key, keyNode: p.key, value: evaluate(p.value as Node, depth + 1) });
      }
      return { kind: "object", props, node };
    }
    case "Identifier":
      if (node.name === "undefined") return { kind: "dynamic", why: "it is undefined", node };
      return { kind: "identifier", name: node.name, node };
    case "CallExpression":
      return { kind: "call", node };
    case "ArrowFunctionExpression":
    case "FunctionExpression":
      return { kind: "function", node };
    default:
      return { kind: "dynamic", why: "it is not a literal", node };
  }
}

function propertyKey(p: TSESTree.Property): string | undefined {
  if (p.computed) {
    return p.key.type === "Literal" && typeof p.key.value === "string" ? p.key.value : undefined;
  }
  if (p.key.type === "Identifier") return p.key.name;
  if (p.key.type === "Literal") return String(p.key.value);
  return undefined;
}

export function describeKind(v: Value): string {
  switch (v.kind) {
    case "string":
      return `the string ${JSON.stringify(v.value)}`;
    case "number":
      return `the number ${v.value}`;
    case "boolean":
      return `${v.value}`;
    case "array":
      return "an array";
    case "object":
      return "an object";
    case "identifier":
      return `\`${v.name}\``;
    case "call":
      return "a call";
    case "function":
      return "a function";
    case "dynamic":
      return "a value computed at run time";
  }
}
