// The library's public API (what `require('matformer-lab')` gives): each layer through its own index.
export * as formats from './formats';
export * as gemma3n from './gemma3n';
export * as slicing from './slicing';
export * as engine from './engine';
export * as mmlu from './eval';
export * as report from './report';
