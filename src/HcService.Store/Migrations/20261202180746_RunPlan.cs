using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace HcService.Store.Migrations
{
    /// <inheritdoc />
    public partial class RunPlan : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "Plan",
                schema: "hc",
                table: "runs",
                type: "jsonb",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Plan",
                schema: "hc",
                table: "runs");
        }
    }
}
