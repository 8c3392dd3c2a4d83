namespace FocusNFix;
