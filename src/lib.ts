// The library's public API (what `require('matformer-lab')` gives): each layer through its own index.
export * as model from './model';
export * as slicing from './slicing';
export * as engine from './engine';
export * as mmlu from './eval';
export * as report from './report';
