// SkiffOCI module
