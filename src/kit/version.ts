/** The version circuit reports (`circuit --version`, the server element's peek). */
export const VERSION = '0.1.0';
