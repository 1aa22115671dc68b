"""SageMaker Pipelines' definitions (schema Version 2020-12-01), read and run here.

`definition` reads a definition into steps and the dependencies between them,
`expressions` evaluates what step arguments hold (parameters, execution variables,
property references, `Std:Join`, `Std:JsonGet`, conditions), and `caching` computes a
step's cache key. `sluice.control.pipelines` runs executions.
"""
