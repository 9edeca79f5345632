#!/usr/bin/env node
// The `captioner` command. The project is TypeScript run by tsx's loader, so there is no build
// step between an edit and a run.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
